"""Outcomes and live metrics on a series with known answers (bot.core.live_scores, pure)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from bot.core import LIVE_COLUMNS, live_metrics, resolve, resolve_all
from consumers.outcomes import snapshot_due
from tests.support.postgres import both_stores

pytestmark = both_stores

T0 = datetime(2024, 1, 1, tzinfo=UTC)
CLOSES = [100.0, 110.0, 99.0, 90.0, 120.0]
# (prediction of a direction model, action) at bars 0..4
CALLS = [(1.0, "buy"), (0.0, "sell"), (1.0, "buy"), (0.0, "hold"), (1.0, "buy")]


def bars() -> pd.DataFrame:
    index = pd.DatetimeIndex([T0 + timedelta(days=i) for i in range(len(CLOSES))], name="time")
    return pd.DataFrame(
        {"open": CLOSES, "high": CLOSES, "low": CLOSES, "close": CLOSES, "volume": 1.0},
        index=index,
    )


def resolved_rows() -> list[list[object]]:
    rows = []
    for i, (prediction, action) in enumerate(CALLS):
        outcome = resolve(
            bars(),
            bar_time=T0 + timedelta(days=i),
            horizon=1,
            target="direction",
            prediction=prediction,
            action=action,
        )
        if outcome is not None:
            rows.append(
                [
                    "SPX-direction-logreg",
                    "direction",
                    "1D",
                    T0 + timedelta(days=i),
                    prediction,
                    None,
                    action,
                    outcome.realised_return,
                    outcome.strategy_return,
                ]
            )
    return rows


def test_outcomes_of_a_known_series() -> None:
    first = resolve(
        bars(), bar_time=T0, horizon=1, target="direction", prediction=1.0, action="buy"
    )
    assert first is not None
    assert first.realised_return == pytest.approx(math.log(110 / 100))
    assert first.hit is True
    assert first.strategy_return == pytest.approx(0.10)
    assert first.exit_time == T0 + timedelta(days=1)
    short = resolve(
        bars(),
        bar_time=T0 + timedelta(days=1),
        horizon=1,
        target="direction",
        prediction=0.0,
        action="sell",
    )
    assert short is not None
    assert (short.hit, short.strategy_return) == (True, pytest.approx(0.10))
    two_bars = resolve(
        bars(),
        bar_time=T0 + timedelta(days=2),
        horizon=2,
        target="return",
        prediction=0.05,
        action="hold",
    )
    assert two_bars is not None
    assert two_bars.realised_return == pytest.approx(math.log(120 / 99))
    assert (two_bars.hit, two_bars.strategy_return) == (True, 0.0)


@pytest.mark.parametrize(
    ("bar_time", "horizon"),
    [
        (T0 + timedelta(days=4), 1),  # the last bar: its next bar has not come yet
        (T0 + timedelta(days=3), 2),  # two bars ahead, one is there
        (T0 + timedelta(hours=5), 1),  # not a bar of the series
    ],
)
def test_no_outcome_before_the_horizon_has_passed_or_for_an_unknown_bar(
    bar_time: datetime, horizon: int
) -> None:
    outcome = resolve(
        bars(),
        bar_time=bar_time,
        horizon=horizon,
        target="direction",
        prediction=1.0,
        action="buy",
    )
    assert outcome is None


def test_many_signals_at_once_resolve_as_each_alone() -> None:
    cases = [  # (bar_time, horizon, target, prediction, action), in no particular order
        (T0 + timedelta(days=2), 2, "return", 0.05, "hold"),
        (T0 + timedelta(days=9), 1, "direction", 1.0, "buy"),  # after the last bar
        (T0, 1, "direction", 1.0, "buy"),
        (T0 + timedelta(hours=5), 1, "direction", 0.0, "sell"),  # not a bar
        (T0 + timedelta(days=4), 1, "direction", 1.0, "buy"),  # horizon not passed
        (T0 + timedelta(days=1), 3, "direction", 0.0, "sell"),
        (T0 - timedelta(days=1), 1, "direction", 1.0, "buy"),  # before the first bar
    ]
    together = resolve_all(
        bars(),
        bar_times=[case[0] for case in cases],
        horizons=[case[1] for case in cases],
        targets=[case[2] for case in cases],
        predictions=[case[3] for case in cases],
        actions=[case[4] for case in cases],
    )
    alone = [
        resolve(bars(), bar_time=t, horizon=h, target=g, prediction=p, action=a)
        for t, h, g, p, a in cases
    ]
    assert together == alone
    assert [r is not None for r in together] == [True, False, True, False, False, True, False]
    last = together[5]
    assert last is not None
    assert last.realised_return == pytest.approx(math.log(120 / 110))
    assert last.strategy_return == pytest.approx(-(99 / 110 - 1))
    assert (
        resolve_all(bars(), bar_times=[], horizons=[], targets=[], predictions=[], actions=[]) == []
    )


def test_live_metrics_of_a_known_series() -> None:
    rows = resolved_rows()
    assert len(rows) == 4  # the last bar has no next bar yet
    out = live_metrics(rows, now=T0 + timedelta(days=5), cost_bps=0.0)
    assert set(out) == {("SPX-direction-logreg", w) for w in ("7d", "30d", "all")}
    metrics = out[("SPX-direction-logreg", "all")]
    assert metrics["signal_count"] == 4
    assert metrics["accuracy"] == pytest.approx(0.5)  # right at bars 0 and 1
    assert metrics["precision"] == pytest.approx(0.5)  # up calls at 0 (right) and 2 (wrong)
    assert metrics["recall"] == pytest.approx(0.5)  # ups at 0 (called) and 3 (missed)
    assert metrics["mae"] is None  # a direction model has no return to compare
    # trades: +0.10 (buy), +0.10 (sell), -9/99 (buy) -> 0.2 / (9/99)
    assert metrics["profit_factor"] == pytest.approx(0.2 / (9 / 99))


def test_windows_only_count_recent_bars_and_costs_lower_returns() -> None:
    rows = resolved_rows()
    later = live_metrics(rows, now=T0 + timedelta(days=10), cost_bps=0.0)
    assert later[("SPX-direction-logreg", "7d")]["signal_count"] == 1  # bar 3 only
    assert ("SPX-direction-logreg", "7d") not in live_metrics(
        rows, now=T0 + timedelta(days=20), cost_bps=0.0
    )
    assert later[("SPX-direction-logreg", "30d")]["signal_count"] == 4
    free = later[("SPX-direction-logreg", "all")]["total_return"]
    costly = live_metrics(rows, now=T0, cost_bps=50.0)[("SPX-direction-logreg", "all")]
    assert free is not None
    assert costly["total_return"] is not None
    assert costly["total_return"] < free


def test_no_rows_no_metrics() -> None:
    assert live_metrics(pd.DataFrame(columns=LIVE_COLUMNS), now=T0, cost_bps=1.0) == {}


@pytest.mark.parametrize(
    ("last_snapshot", "now", "due"),
    [
        (None, 10.0, 10.0),  # no snapshot since start: right away
        (0.0, 100.0, 100.0),  # the last one is older than the fresh interval: right away
        (95.0, 100.0, 110.0),  # debounced: 15 s after the last one
        (250.0, 260.0, 265.0),
        (290.0, 295.0, 300.0),  # never later than the regular snapshot
    ],
)
def test_a_snapshot_follows_new_outcomes_debounced(
    last_snapshot: float | None, now: float, due: float
) -> None:
    assert (
        snapshot_due(scheduled=300.0, last_snapshot=last_snapshot, now=now, fresh_interval=15.0)
        == due
    )
