"""The bytes the receiver publishes for an alert, pinned.

`TradingViewMessage.to_alert` builds the `Alert` from the already validated message instead of
validating every field a second time; these tests hold the published JSON to the bytes the fully
validating version produced (captured before the change), and the two models' shared fields to the
same checks, so that the shortcut can never publish something `Alert` would refuse.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from bot.contracts import Alert, TradingViewMessage
from storage.db import create_engine, create_session_factory
from storage.tables import OutboxEntry
from tests.support.webhook import MakeReceiver, dumps, signed_headers, tv_message

RECEIVED = datetime(2026, 11, 29, 16, 0, 0, 123456, tzinfo=UTC)
SAMPLE: dict[str, Any] = {
    "ticker": " ndx ",
    "exchange": "NASDAQ",
    "interval": "1D",
    "time": "2026-11-27T01:00:00+01:00",
    "open": 21000,
    "high": 21100.5,
    "low": 20900,
    "close": 21050.25,
    "volume": 0,
    "action": " BUY ",
    "rsi": 55.5,
    "note": " x ",
    "nested": {"a": [1, 2]},
}
# Published by the version that validated the message and then the Alert (commit 004a21e).
SAMPLE_WIRE = (
    '{"open":21000.0,"high":21100.5,"low":20900.0,"close":21050.25,"volume":0.0,'
    '"schema_version":1,"alert_id":"%s","source":"%s","symbol":"NDX","exchange":"NASDAQ",'
    '"interval":"1D","bar_time":"2026-11-27T00:00:00Z","action":"buy",'
    '"received_at":"%s","extra":{"rsi":55.5,"note":" x ","nested":{"a":[1,2]}}}'
)
SAMPLE_ID = "50a2dfa371c078eebb63f3074b17cf96"
REPLAY_WIRE = (
    '{"open":6000.5,"high":6050.25,"low":5990.0,"close":6040.75,"volume":2100000000.0,'
    '"schema_version":1,"alert_id":"86b9afe8c7651ec50cd8cc7d0033cb9e","source":"replay",'
    '"symbol":"SPX","exchange":null,"interval":"60","bar_time":"2025-11-27T00:00:00Z",'
    '"action":null,"received_at":"2026-11-29T16:00:00.123456Z","extra":{}}'
)
REPLAY_SAMPLE: dict[str, Any] = {
    "ticker": "SPX",
    "interval": "60",
    "time": 1764201600000,
    "open": 6000.5,
    "high": 6050.25,
    "low": 5990,
    "close": 6040.75,
    "volume": 2.1e9,
}
# Alert field -> the TradingViewMessage field it is copied from.
SHARED_FIELDS = {
    "symbol": "ticker",
    "exchange": "exchange",
    "interval": "interval",
    "bar_time": "time",
    "action": "action",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
}


def _received(payload: bytes) -> str:
    found = re.search(rb'"received_at":"([^"]+)"', payload)
    assert found is not None
    return found.group(1).decode()


async def _outbox_payloads(database_url: str) -> list[bytes]:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            entries = await session.scalars(select(OutboxEntry).order_by(OutboxEntry.id))
            return [entry.payload for entry in entries]
    finally:
        await engine.dispose()


def test_to_alert_publishes_the_same_bytes_as_before() -> None:
    message = TradingViewMessage.model_validate({"passphrase": "secret-value-123", **SAMPLE})
    by_hash = message.to_alert(source="tradingview", received_at=RECEIVED)
    signed = message.to_alert(source="signed", webhook_id="msg_abcdef12", received_at=RECEIVED)
    replay = TradingViewMessage.model_validate(REPLAY_SAMPLE).to_alert(
        source="replay", received_at=RECEIVED
    )
    stamp = "2026-11-29T16:00:00.123456Z"
    assert by_hash.model_dump_json() == SAMPLE_WIRE % (SAMPLE_ID, "tradingview", stamp)
    assert signed.model_dump_json() == SAMPLE_WIRE % ("signed:msg_abcdef12", "signed", stamp)
    assert replay.model_dump_json() == REPLAY_WIRE


@pytest.mark.parametrize(
    "document",
    [
        SAMPLE,
        REPLAY_SAMPLE,
        {**REPLAY_SAMPLE, "time": "1764201600", "action": "sell", "exchange": " CME "},
        {**SAMPLE, "time": 1764201600.5, "action": "", "volume": 1e-9},
    ],
)
def test_the_built_alert_is_what_full_validation_makes_of_it(document: dict[str, Any]) -> None:
    alert = TradingViewMessage.model_validate(document).to_alert(source="tradingview")
    validated = Alert.model_validate(alert.model_dump())
    assert validated == alert
    assert validated.model_dump_json() == alert.model_dump_json()
    assert Alert.model_validate_json(alert.model_dump_json()) == alert


def test_fields_copied_from_the_message_have_the_checks_of_the_alert() -> None:
    for alert_field, message_field in SHARED_FIELDS.items():
        ours = Alert.model_fields[alert_field]
        theirs = TradingViewMessage.model_fields[message_field]
        assert (ours.annotation, ours.metadata) == (theirs.annotation, theirs.metadata), alert_field
    wire = set(Alert.model_fields) - {"schema_version", "alert_id", "source", "received_at"}
    assert wire == {*SHARED_FIELDS, "extra"}


def test_what_the_caller_adds_is_still_checked() -> None:
    message = TradingViewMessage.model_validate(SAMPLE)
    with pytest.raises(ValidationError, match="webhook_id"):
        message.to_alert(source="signed", webhook_id="short")
    with pytest.raises(ValidationError, match="received_at"):
        message.to_alert(source="signed", received_at=datetime(2026, 11, 29))  # noqa: DTZ001
    paris = datetime(2026, 11, 29, 17, tzinfo=timezone(timedelta(hours=1)))
    assert message.to_alert(source="signed", received_at=paris).received_at == datetime(
        2026, 11, 29, 16, tzinfo=UTC
    )


async def test_the_receiver_publishes_the_same_bytes_as_before(
    receiver: MakeReceiver, settings, webhook_secret: str
) -> None:
    client = await receiver()
    response = await client.post("/webhook/tradingview", json=tv_message(**SAMPLE))
    assert response.status == 202
    body = dumps(SAMPLE)
    headers = signed_headers(body, webhook_secret, msg_id="msg_abcdef12")
    response = await client.post("/webhook", data=body, headers=headers)
    assert response.status == 202
    by_hash, signed = await _outbox_payloads(settings.database_url)
    for payload, alert_id, source in (
        (by_hash, SAMPLE_ID, "tradingview"),
        (signed, "signed:msg_abcdef12", "signed"),
    ):
        stamp = _received(payload)
        age = datetime.now(UTC) - datetime.fromisoformat(stamp)
        assert timedelta(0) <= age < timedelta(minutes=5)
        assert payload.decode() == SAMPLE_WIRE % (alert_id, source, stamp)
        assert json.loads(payload)["alert_id"] == alert_id
