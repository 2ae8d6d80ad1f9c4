"""Bar times and intervals (`bot.contracts.bars`): the one rule every part asks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.contracts.bars import (
    EARLIEST,
    LATEST,
    BarTimeBounds,
    canonical_interval,
    from_epoch,
    interval_length,
)

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("interval", "length"),
    [
        ("1D", timedelta(days=1)),
        ("D", timedelta(days=1)),
        ("4h", timedelta(hours=4)),
        ("15m", timedelta(minutes=15)),
        ("60", timedelta(hours=1)),
        ("1W", timedelta(weeks=1)),
        ("52W", timedelta(weeks=52)),
    ],
)
def test_interval_lengths(interval: str, length: timedelta) -> None:
    assert interval_length(interval) == length


@pytest.mark.parametrize("interval", ["", "M", "1M", "0D", "abc", "9999999", "999999W", "367D"])
def test_unknown_zero_or_longer_than_a_year_intervals_are_refused(interval: str) -> None:
    with pytest.raises(ValueError, match="interval"):
        interval_length(interval)


def test_canonical_spellings() -> None:
    assert [canonical_interval(i) for i in ("D", "1d", "60", "240", "1W", "90s", "x")] == [
        "1D", "1D", "1h", "4h", "1W", "90s", "x",
    ]  # fmt: skip


def test_epoch_numbers_are_seconds_or_milliseconds_within_the_range() -> None:
    assert from_epoch(1764201600) == from_epoch(1764201600000) == datetime(2025, 11, 27, tzinfo=UTC)
    for value in (1e20, float("inf"), float("nan"), -1e13, 10**16 * 1000):
        with pytest.raises(ValueError, match="time"):
            from_epoch(value)


def test_the_default_future_bound_is_one_interval_and_five_minutes() -> None:
    bounds = BarTimeBounds(max_age=timedelta(days=365))
    assert bounds.allowed("1h", NOW) == (NOW - timedelta(days=365), NOW + timedelta(minutes=65))
    assert bounds.violation(NOW + timedelta(minutes=64), "1h", NOW) is None
    problem = bounds.violation(NOW + timedelta(minutes=66), "1h", NOW)
    assert problem is not None
    assert "ahead of" in problem
    assert "the allowed range is" in problem


@settings(max_examples=300, deadline=None)
@given(
    interval=st.from_regex(r"^[0-9]{0,6}[smhdwSHDW]?$", fullmatch=True),
    bar_time=st.datetimes(
        min_value=EARLIEST.replace(tzinfo=None), max_value=LATEST.replace(tzinfo=None)
    ).map(lambda t: t.replace(tzinfo=UTC)),
    now=st.datetimes(
        min_value=EARLIEST.replace(tzinfo=None), max_value=LATEST.replace(tzinfo=None)
    ).map(lambda t: t.replace(tzinfo=UTC)),
    max_age=st.integers(1, 146000),
    skew=st.one_of(st.none(), st.integers(0, 366 * 86400)),
)
def test_the_bounds_answer_for_any_interval_and_times_without_overflowing(
    interval: str, bar_time: datetime, now: datetime, max_age: int, skew: int | None
) -> None:
    """The fuzzer found `999999W` overflowing `now + interval` (a 500): never again."""
    bounds = BarTimeBounds(
        max_age=timedelta(days=max_age),
        max_future_skew=None if skew is None else timedelta(seconds=skew),
    )
    try:
        interval_length(interval)
    except ValueError:
        return
    problem = bounds.violation(bar_time, interval, now)
    oldest, newest = bounds.allowed(interval, now)
    assert (problem is None) == (oldest <= bar_time <= newest)
