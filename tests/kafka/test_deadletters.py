"""What `itff dlq` chooses, without a broker: times given as ISO or a duration, the filter by
reason and time, and the replay plan (each alert once, originals that are not alerts skipped)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.contracts import Alert, BadInput, DeadLetter
from bot.kafka.deadletters import (
    DUPLICATE,
    NOT_AN_ALERT,
    LetterFilter,
    StoredLetter,
    decode_alert,
    parse_when,
    plan_replay,
)

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def alert(alert_id: str) -> Alert:
    return Alert(
        alert_id=alert_id,
        source="tradingview",
        symbol="BTCUSDT",
        interval="1D",
        bar_time=datetime(2026, 12, 1, tzinfo=UTC),
        open=1.0,
        high=2.0,
        low=0.5,
        close=1.5,
        volume=10.0,
    )


def stored(
    offset: int, original: bytes, reason: str = "no_model", failed: datetime = NOW
) -> StoredLetter:
    letter = DeadLetter(
        original=original,
        error="e",
        reason=reason,
        stage="route",
        topic="t.alerts",
        partition=0,
        offset=offset,
        failed_at=failed,
    )
    return StoredLetter(0, offset, letter, decode_alert(original))


def test_times_are_iso_or_a_duration_before_now() -> None:
    assert parse_when("2h", now=NOW) == NOW - timedelta(hours=2)
    assert parse_when("3d", now=NOW) == NOW - timedelta(days=3)
    assert parse_when("90m", now=NOW) == NOW - timedelta(minutes=90)
    assert parse_when("2026-12-01") == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_when("2026-12-01T08:00:00+01:00") == datetime(2026, 12, 1, 7, tzinfo=UTC)
    with pytest.raises(BadInput, match="neither a date or time"):
        parse_when("yesterday")


def test_the_filter_takes_reasons_and_a_time_range_inclusive() -> None:
    letters = [
        stored(0, b"x", "undecodable", NOW - timedelta(days=2)),
        stored(1, b"x", "no_model", NOW - timedelta(hours=1)),
        stored(2, b"x", "no_model", NOW),
    ]
    offsets = lambda chosen: [s.offset for s in chosen.apply(letters)]  # noqa: E731
    assert offsets(LetterFilter()) == [0, 1, 2]
    assert offsets(LetterFilter(reasons=frozenset({"no_model"}))) == [1, 2]
    assert offsets(LetterFilter(since=NOW - timedelta(hours=1))) == [1, 2]
    assert offsets(LetterFilter(until=NOW - timedelta(hours=1))) == [0, 1]
    both = LetterFilter(reasons=frozenset({"undecodable"}), since=NOW - timedelta(days=1))
    assert offsets(both) == []


def test_a_replay_sends_each_alert_once_and_skips_what_is_not_an_alert() -> None:
    first, second = (alert(f"alert-000{i}").model_dump_json().encode() for i in range(2))
    letters = [
        stored(3, second, "prediction_failed"),
        stored(1, first, "prediction_failed"),
        stored(2, first, "prediction_failed"),  # one letter per model: the same alert
        stored(0, b"\xff not json", "undecodable"),
        stored(4, b'{"alert_id": "no-bar"}', "invalid_bar"),
    ]
    plan = plan_replay(letters)
    assert [s.letter.offset for s in plan.send] == [1, 3]  # in the originals' order
    assert plan.skipped == {NOT_AN_ALERT: 2, DUPLICATE: 1}
    with_invalid = plan_replay(letters, include_invalid=True)
    assert [s.letter.offset for s in with_invalid.send] == [0, 1, 3, 4]
    assert with_invalid.skipped == {DUPLICATE: 1}
