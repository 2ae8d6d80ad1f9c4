"""The bar rule: kinds of bars, runs in offset order, upserts, and when history is read again."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from bot.contracts import Alert
from bot.contracts.bars import canonical_interval
from consumers.deadletters import Reason, RecordRef, decode_alert
from consumers.windows import (
    BarArrays,
    BarKind,
    BarWindows,
    alert_bars,
    apply_run_arrays,
    classify,
    covered_after,
    runs,
    with_history,
)
from tests.support.postgres import both_stores

pytestmark = both_stores

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def alert(day: int, close: float = 100.0, alert_id: str | None = None) -> Alert:
    return Alert(
        alert_id=alert_id or f"alert-{day:04d}",
        source="replay",
        symbol="SPX",
        interval="1D",
        bar_time=T0 + timedelta(days=day),
        open=close,
        high=close + 1,
        low=close - 1,
        close=close,
        volume=1000.0,
    )


def window(days: range) -> BarArrays:
    return BarArrays.of(alert_bars([alert(d) for d in days]))


def day(n: int) -> pd.Timestamp:
    return pd.Timestamp(T0 + timedelta(days=n))


def test_first_bars_of_an_empty_window_are_new() -> None:
    empty = BarArrays.of(pd.DataFrame())
    assert classify(empty, [alert(0), alert(1)]) == (BarKind.NEW, BarKind.NEW)


def test_new_duplicate_and_late_bars_are_told_apart() -> None:
    current = window(range(0, 10, 2))  # days 0, 2, 4, 6, 8
    kinds = classify(current, [alert(9), alert(8), alert(5), alert(9), alert(10)])
    assert kinds == (
        BarKind.NEW,
        BarKind.DUPLICATE,
        BarKind.LATE,
        BarKind.DUPLICATE,
        BarKind.NEW,
    )


def test_a_run_replaces_a_known_bar_inserts_a_late_one_and_keeps_time_order() -> None:
    current = window(range(0, 10, 2))  # days 0, 2, 4, 6, 8
    merged, positions = apply_run_arrays(current, [alert(4, close=200.0), alert(5), alert(10)])
    frame = merged.frame()
    assert list(frame.index) == [day(d) for d in (0, 2, 4, 5, 6, 8, 10)]
    assert positions == [2, 3, 6]
    assert frame.loc[day(4), "close"] == 200.0
    assert frame.loc[day(5), "close"] == 100.0
    assert list(current.frame()["close"]) == [100.0] * 5  # the window itself is left alone
    appended, positions = apply_run_arrays(current, [alert(9), alert(11)])
    assert list(appended.index) == [day(d) for d in (0, 2, 4, 6, 8, 9, 11)]
    assert positions == [5, 6]
    first, positions = apply_run_arrays(BarArrays.of(pd.DataFrame()), [alert(0), alert(1)])
    assert list(first.index) == [day(0), day(1)]
    assert positions == [0, 1]


def test_alerts_form_runs_of_strictly_increasing_bar_times() -> None:
    alerts = [alert(d) for d in (3, 4, 7, 7, 2, 5, 1)]
    assert runs(alerts) == [[0, 1, 2], [3], [4, 5], [6]]
    assert runs([]) == []


def test_history_is_read_for_a_bar_older_than_what_the_window_covers() -> None:
    full = window(range(10, 20))  # a full window of 10 bars: days 10..19
    edge = covered_after(full, 10)
    assert edge == day(18)
    assert day(25) > edge  # a new bar: the 9 before it are in the window
    assert day(19) > edge  # the last bar: 9 before it
    assert not day(18) > edge  # only 8 bars before it in the window
    short = window(range(5))  # shorter than its size: the whole stored history
    assert covered_after(short, 10) is None


def test_stored_history_joins_the_window_without_losing_its_newer_bars() -> None:
    current = window(range(10, 20))
    stored = window(range(15)).frame().assign(close=1.0)
    joined = with_history(current, stored).frame()
    assert list(joined.index) == [day(d) for d in range(20)]
    assert (joined["close"].iloc[:15] == 1.0).all()
    assert (joined["close"].iloc[15:] == 100.0).all()
    assert with_history(current, window(range(0)).frame()) is current


def test_windows_keep_the_last_size_bars_and_grow_on_demand() -> None:
    windows = BarWindows(3)
    windows.put(("SPX", "1D"), window(range(10)))
    assert windows.get(("SPX", "1D")) is None  # never read from the database
    windows.seed(("SPX", "1D"), window(range(10)).frame())
    stored = windows.get(("SPX", "1D"))
    assert stored is not None
    assert len(stored) == 3
    assert stored.index[-1] == pd.Timestamp(T0 + timedelta(days=9))
    windows.ensure_size(5)
    assert windows.get(("SPX", "1D")) is None
    assert windows.size == 5


def test_a_window_older_than_its_max_age_is_read_again() -> None:
    windows = BarWindows(3, max_age=-1.0)
    windows.seed(("SPX", "1D"), window(range(3)).frame())
    assert windows.get(("SPX", "1D")) is None
    fresh = BarWindows(3, max_age=3600.0)
    fresh.seed(("SPX", "1D"), window(range(3)).frame())
    fresh.put(("SPX", "1D"), window(range(4)))
    assert fresh.get(("SPX", "1D")) is not None
    fresh.invalidate([("SPX", "1D")])
    assert fresh.get(("SPX", "1D")) is None


def test_invalid_size_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BarWindows(0)


@pytest.mark.parametrize(
    ("given", "canonical"),
    [("D", "1D"), ("1d", "1D"), ("60", "1h"), ("240", "4h"), ("W", "1W"), ("15", "15m")],
)
def test_intervals_are_canonical(given: str, canonical: str) -> None:
    assert canonical_interval(given) == canonical


def ref(value: bytes) -> RecordRef:
    return RecordRef(value=value, topic="t.alerts", partition=2, offset=41)


def test_undecodable_and_invalid_records_become_dead_letters_with_their_bytes() -> None:
    garbage = decode_alert(ref(b"\xff\xfe not json"))
    assert not isinstance(garbage, Alert)
    assert garbage.reason == Reason.UNDECODABLE
    assert garbage.original == b"\xff\xfe not json"
    assert (garbage.topic, garbage.partition, garbage.offset) == ("t.alerts", 2, 41)

    bad = alert(1).model_dump(mode="json") | {"high": 1.0}
    invalid = decode_alert(ref(json.dumps(bad).encode()))
    assert not isinstance(invalid, Alert)
    assert invalid.reason == Reason.INVALID_BAR
    assert "inconsistent bar" in invalid.error


def test_a_valid_record_decodes_to_its_alert() -> None:
    original = alert(3)
    assert decode_alert(ref(original.model_dump_json().encode())) == original


def test_the_inference_group_is_itff_inference_and_private_to_other_prefixes() -> None:
    from bot.contracts import load_settings
    from consumers.app import inference_group

    assert inference_group(load_settings(topic_prefix="itff")) == "itff-inference"
    assert inference_group(load_settings(topic_prefix="t123")) == "t123-inference"
