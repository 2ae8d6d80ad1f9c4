"""Running aggregates equal the full recomputation of live metrics, over random outcome streams."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core import LIVE_COLUMNS, live_metrics
from bot.core.live_aggregates import (
    Segment,
    combine,
    day_of,
    fold,
    one,
    segment_metrics,
    segment_of,
    window_days_start,
)
from bot.core.live_scores import WINDOWS

T0 = datetime(2026, 1, 1, tzinfo=UTC)
COUNTS = ("accuracy", "accuracy_ci_low", "accuracy_ci_high", "n", "precision", "recall", "f1")

row = st.tuples(
    st.integers(min_value=1, max_value=40 * 24),  # hours after the previous bar (<= 40 days)
    st.sampled_from(["buy", "sell", "hold", "hold", "exit"]),
    st.floats(min_value=-0.05, max_value=0.05, allow_nan=False),  # realised (log) return
    st.floats(min_value=-0.05, max_value=0.05, allow_nan=False),  # one-bar return
    st.floats(min_value=0.0, max_value=1.0, allow_nan=False),  # prediction (scaled by target)
)
model = st.tuples(
    st.sampled_from(["direction", "return"]),
    st.sampled_from(["1h", "1d"]),
    st.lists(row, min_size=1, max_size=60),
)


def frame_of(models: list[tuple[str, str, list[Any]]]) -> pd.DataFrame:
    records = []
    for number, (target, interval, rows) in enumerate(models):
        at = T0
        for hours, action, realised, one_bar, score in rows:
            at += timedelta(hours=hours)
            prediction = score if target == "direction" else (score - 0.5) / 10
            position = {"buy": 1.0, "sell": -1.0}.get(action, 0.0)
            key = f"M{number}-{target}"
            records.append(
                (key, target, interval, at, prediction, None, action, realised, position * one_bar)
            )
    return pd.DataFrame(records, columns=LIVE_COLUMNS)


def segments_by_day(rows: pd.DataFrame, *, cost_bps: float) -> dict[datetime, Segment]:
    """Day buckets grown one signal at a time, as the outcome path grows them."""
    buckets: dict[datetime, Segment] = {}
    for item in rows.sort_values("bar_time").itertuples():
        single = one(
            bar_time=item.bar_time,
            target=item.target,
            prediction=item.prediction,
            action=item.action,
            realised_return=item.realised_return,
            strategy_return=item.strategy_return,
        )
        day = day_of(item.bar_time)
        held = buckets.get(day)
        buckets[day] = single if held is None else combine(held, single, cost_bps=cost_bps)
    return buckets


def assert_same(incremental: dict[str, float | None], full: dict[str, float | None]) -> None:
    assert incremental.keys() == full.keys()
    for name, expected in full.items():
        got = incremental[name]
        if name in COUNTS or name == "signal_count" or expected is None:
            assert got == expected, name  # counts and undefined figures: exactly
        else:
            assert got is not None, name
            assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), name


@settings(max_examples=150, deadline=None)
@given(
    models=st.lists(model, min_size=1, max_size=3),
    cost_bps=st.sampled_from([0.0, 1.0, 25.0]),
    later=st.integers(min_value=0, max_value=60 * 24),
)
def test_running_aggregates_equal_the_full_recomputation(
    models: list[tuple[str, str, list[Any]]], cost_bps: float, later: int
) -> None:
    frame = frame_of(models)
    now = frame["bar_time"].max() + timedelta(hours=later)
    full = live_metrics(frame, now=now, cost_bps=cost_bps)
    incremental: dict[tuple[str, str], dict[str, float | None]] = {}
    for key, rows in frame.groupby("model_key"):
        buckets = segments_by_day(rows, cost_bps=cost_bps)
        target, interval = rows["target"].iloc[0], rows["interval"].iloc[0]
        for name, span in WINDOWS:
            start = None if span is None else window_days_start(now, span)
            chosen = [buckets[d] for d in sorted(buckets) if start is None or d >= start]
            segment = fold(chosen, cost_bps=cost_bps)
            if segment is not None:
                incremental[(str(key), name)] = segment_metrics(
                    segment, target=target, interval=interval, cost_bps=cost_bps
                )
    assert incremental.keys() == full.keys()
    for window_key, figures in full.items():
        assert_same(incremental[window_key], figures)


def test_a_segment_survives_its_json_form() -> None:
    at = T0 + timedelta(hours=3)
    a = one(
        bar_time=at,
        target="return",
        prediction=0.01,
        action="buy",
        realised_return=0.02,
        strategy_return=1 / 3,
    )
    b = one(
        bar_time=at + timedelta(hours=1),
        target="return",
        prediction=-0.01,
        action="sell",
        realised_return=0.01,
        strategy_return=-0.1,
    )
    both = combine(a, b, cost_bps=1.0)
    assert Segment.from_json(both.to_json()) == both
    figures = segment_metrics(both, target="return", interval="1h", cost_bps=1.0)
    # one closed buy (1/3 - 2 fees) and the open sell (-0.1 - 1 fee)
    assert figures["profit_factor"] == pytest.approx((1 / 3 - 2e-4) / (0.1 + 1e-4))
    assert figures["mae"] == pytest.approx((0.01 + 0.02) / 2)
    assert math.isclose(figures["accuracy"] or 0.0, 0.5)


@settings(max_examples=150, deadline=None)
@given(models=st.lists(model, min_size=1, max_size=1), cost_bps=st.sampled_from([0.0, 1.0, 25.0]))
def test_a_segment_over_arrays_equals_the_fold_of_single_signals(
    models: list[tuple[str, str, list[Any]]], cost_bps: float
) -> None:
    rows = frame_of(models).sort_values("bar_time")
    target = str(rows["target"].iloc[0])
    folded = fold(
        (
            one(
                bar_time=r.bar_time,
                target=r.target,
                prediction=r.prediction,
                action=r.action,
                realised_return=r.realised_return,
                strategy_return=r.strategy_return,
            )
            for r in rows.itertuples()
        ),
        cost_bps=cost_bps,
    )
    assert folded is not None
    at_once = segment_of(
        bar_times=list(rows["bar_time"]),
        target=target,
        predictions=rows["prediction"].to_numpy(),
        actions=list(rows["action"]),
        realised_returns=rows["realised_return"].to_numpy(),
        strategy_returns=rows["strategy_return"].to_numpy(),
        cost_bps=cost_bps,
    )
    for name, value in folded.to_json().items():
        got = at_once.to_json()[name]
        if isinstance(value, float):
            assert got == pytest.approx(value, rel=1e-9, abs=1e-12), name
        else:
            assert got == value, name
