"""The bar rule of the rolling windows: new bars append, duplicates replace, late bars insert."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from bot.schemas import Alert
from consumers.deadletters import Reason, RecordRef, decode_alert
from consumers.windows import BarKind, BarWindows, canonical_interval, classify, merge

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


def window(days: range) -> pd.DataFrame:
    return merge(pd.DataFrame(), [alert(d) for d in days]).bars


def test_first_bars_of_an_empty_window_are_new() -> None:
    assert classify(pd.DataFrame(), [alert(0), alert(1)]) == (BarKind.NEW, BarKind.NEW)


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


def test_merge_replaces_a_duplicate_with_the_later_values_and_keeps_time_order() -> None:
    current = window(range(5))
    merged = merge(current, [alert(4, close=200.0), alert(7), alert(6)])
    assert list(merged.bars.index) == [
        pd.Timestamp(T0 + timedelta(days=d)) for d in range(8) if d != 5
    ]
    assert merged.bars["close"].iloc[4] == 200.0
    assert merged.kinds == (BarKind.DUPLICATE, BarKind.NEW, BarKind.LATE)
    assert [merged.bars.index[p] for p in merged.positions] == [
        pd.Timestamp(T0 + timedelta(days=d)) for d in (4, 7, 6)
    ]


def test_windows_keep_the_last_size_bars_and_grow_on_demand() -> None:
    windows = BarWindows(3)
    windows.put(("SPX", "1D"), window(range(10)))
    assert windows.get(("SPX", "1D")) is None  # never read from the database
    windows.seed(("SPX", "1D"), window(range(10)))
    stored = windows.get(("SPX", "1D"))
    assert stored is not None
    assert len(stored) == 3
    assert stored.index[-1] == pd.Timestamp(T0 + timedelta(days=9))
    windows.ensure_size(5)
    assert windows.get(("SPX", "1D")) is None
    assert windows.size == 5


def test_a_window_older_than_its_max_age_is_read_again() -> None:
    windows = BarWindows(3, max_age=-1.0)
    windows.seed(("SPX", "1D"), window(range(3)))
    assert windows.get(("SPX", "1D")) is None
    fresh = BarWindows(3, max_age=3600.0)
    fresh.seed(("SPX", "1D"), window(range(3)))
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
    from bot.settings import load_settings
    from consumers.app import inference_group

    assert inference_group(load_settings(topic_prefix="itff")) == "itff-inference"
    assert inference_group(load_settings(topic_prefix="t123")) == "t123-inference"
