"""`POST /webhook/tradingview`: payloads, passphrase, bar-time bounds, duplicates, JSON errors.

Kafka is deliberately down here (see tests/support/webhook.py), so accepted alerts are answered
`queued: true` from the real SQLite outbox.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.contracts import Settings
from storage.db import create_engine, create_session_factory
from storage.tables import OutboxEntry
from tests.support.webhook import PASSPHRASE, MakeReceiver, dumps, tv_message

URL = "/webhook/tradingview"


async def _outbox(database_url: str) -> list[OutboxEntry]:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            return list(await session.scalars(select(OutboxEntry).order_by(OutboxEntry.id)))
    finally:
        await engine.dispose()


async def test_json_alert_is_accepted_into_the_outbox_without_the_passphrase(
    receiver: MakeReceiver, settings
) -> None:
    client = await receiver()
    response = await client.post(URL, json=tv_message())
    assert response.status == 202
    body = await response.json()
    assert body["status"] == "accepted"
    assert body["queued"] is True
    entries = await _outbox(settings.database_url)
    assert [e.alert_id for e in entries] == [body["alert_id"]]
    payload = json.loads(entries[0].payload)
    assert payload["symbol"] == "SPX"
    assert payload["source"] == "tradingview"
    assert payload["action"] == "buy"
    assert entries[0].key == b"SPX"
    assert PASSPHRASE.encode() not in entries[0].payload


async def test_text_plain_body_holding_json_is_accepted(receiver: MakeReceiver) -> None:
    client = await receiver()
    response = await client.post(
        URL, data=dumps(tv_message()), headers={"Content-Type": "text/plain; charset=utf-8"}
    )
    assert response.status == 202


async def test_indicator_alert_without_action_and_extra_fields_is_accepted(
    receiver: MakeReceiver, settings
) -> None:
    client = await receiver()
    response = await client.post(URL, json=tv_message(action=..., plot_0=1.5))
    assert response.status == 202
    payload = json.loads((await _outbox(settings.database_url))[0].payload)
    assert payload["action"] is None
    assert payload["extra"] == {"plot_0": 1.5}


async def test_missing_fields_are_named(receiver: MakeReceiver) -> None:
    client = await receiver()
    response = await client.post(URL, json=tv_message(close=..., ticker=...))
    assert response.status == 422
    body = await response.json()
    assert body["error"] == "validation"
    assert {e["field"] for e in body["detail"]} == {"close", "ticker"}


async def test_nan_price_is_refused_naming_the_field(receiver: MakeReceiver) -> None:
    client = await receiver()
    text = dumps(tv_message(close=math.nan))
    assert "NaN" in text
    response = await client.post(URL, data=text, headers={"Content-Type": "application/json"})
    assert response.status == 422
    detail = (await response.json())["detail"]
    assert detail == [
        {"field": "close", "message": "Value error, must be a finite number greater than 0"}
    ]


async def test_negative_price_is_refused(receiver: MakeReceiver) -> None:
    client = await receiver()
    response = await client.post(URL, json=tv_message(low=-1.0))
    assert response.status == 422
    assert [e["field"] for e in (await response.json())["detail"]] == ["low"]


async def test_inconsistent_bar_is_refused(receiver: MakeReceiver) -> None:
    client = await receiver()
    response = await client.post(URL, json=tv_message(high=90.0))
    assert response.status == 422
    assert "inconsistent bar" in (await response.json())["detail"][0]["message"]


async def test_wrong_or_missing_passphrase_is_401(receiver: MakeReceiver, settings) -> None:
    client = await receiver()
    wrong = await client.post(URL, json=tv_message(passphrase="nope"))
    missing = await client.post(URL, json=tv_message(passphrase=...))
    assert (wrong.status, missing.status) == (401, 401)
    assert "wrong passphrase" in (await wrong.json())["detail"]
    assert "missing" in (await missing.json())["detail"]
    assert await _outbox(settings.database_url) == []


async def test_wrong_passphrase_wins_over_bad_fields(receiver: MakeReceiver) -> None:
    client = await receiver()
    response = await client.post(URL, json=tv_message(passphrase="nope", close="x"))
    assert response.status == 401


async def test_body_that_is_not_json_or_not_an_object_is_400(receiver: MakeReceiver) -> None:
    client = await receiver()
    garbage = await client.post(URL, data="close={{close}}", headers={"Content-Type": "text/plain"})
    array = await client.post(URL, json=[tv_message()])
    assert (garbage.status, array.status) == (400, 400)
    assert (await garbage.json())["error"] == "not_json"
    assert "line 1 column 1" in (await garbage.json())["detail"]
    assert (await array.json())["error"] == "not_object"


async def test_unsupported_content_type_is_415(receiver: MakeReceiver) -> None:
    client = await receiver()
    response = await client.post(
        URL, data=dumps(tv_message()), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status == 415
    assert "application/json" in (await response.json())["detail"]


async def test_ten_megabyte_body_is_413_json(receiver: MakeReceiver, settings) -> None:
    client = await receiver()
    huge = io.BytesIO(dumps(tv_message(note="x" * (10 * 1024 * 1024))).encode())
    response = await client.post(URL, data=huge, headers={"Content-Type": "application/json"})
    assert response.status == 413
    body = await response.json()
    assert body["error"] == "payload_too_large"
    assert str(settings.max_body_bytes) in body["detail"]


@pytest.mark.parametrize(
    ("time", "side"),
    [
        ("2020-01-02T00:00:00Z", "older than allowed"),
        (f"{datetime.now(UTC).year + 3}-01-02T00:00:00Z", "ahead of"),
    ],
)
async def test_a_bar_outside_the_plausible_range_is_422_naming_the_range(
    receiver: MakeReceiver, time: str, side: str
) -> None:
    client = await receiver(max_bar_age_days=365)
    response = await client.post(URL, json=tv_message(time=time))
    assert response.status == 422
    body = await response.json()
    assert body["error"] == "out_of_range"
    [problem] = body["detail"]
    assert problem["field"] == "time"
    assert side in problem["message"]
    assert "the allowed range is" in problem["message"]
    assert "ITFF_MAX_BAR_AGE_DAYS" in problem["message"]


async def test_the_future_bound_is_one_interval_plus_five_minutes_by_default(
    receiver: MakeReceiver,
) -> None:
    client = await receiver()
    now = datetime.now(UTC).replace(microsecond=0)
    inside = now + timedelta(hours=1, minutes=4)
    outside = now + timedelta(hours=1, minutes=6)
    statuses = [
        (await client.post(URL, json=tv_message(interval="60", time=t.isoformat()))).status
        for t in (inside, outside)
    ]
    assert statuses == [202, 422]
    skewed = await receiver(max_future_skew_seconds=0)
    response = await skewed.post(URL, json=tv_message(interval="60", time=inside.isoformat()))
    assert response.status == 422


@pytest.mark.parametrize(
    "time", [1e20, 10**13 * 1000, "9999-12-31T00:00:00Z", "1e20", "99999999999999999999999"]
)
async def test_unrepresentable_times_are_422_not_500(receiver: MakeReceiver, time: Any) -> None:
    client = await receiver()
    response = await client.post(URL, json=tv_message(time=time))
    assert response.status == 422
    assert [e["field"] for e in (await response.json())["detail"]] == ["time"]


async def test_old_bars_within_the_horizon_are_accepted(receiver: MakeReceiver) -> None:
    client = await receiver()
    response = await client.post(URL, json=tv_message(time="2000-01-03T00:00:00Z"))
    assert response.status == 202


async def test_retry_of_the_same_alert_is_a_duplicate_and_queued_once(
    receiver: MakeReceiver, settings
) -> None:
    client = await receiver()
    first = await client.post(URL, json=tv_message())
    second = await client.post(URL, json=tv_message())
    assert first.status == 202
    assert second.status == 200
    assert await second.json() == {
        "alert_id": (await first.json())["alert_id"],
        "status": "duplicate",
    }
    assert len(await _outbox(settings.database_url)) == 1


async def test_a_different_bar_is_not_a_duplicate(receiver: MakeReceiver) -> None:
    client = await receiver()
    first = await client.post(URL, json=tv_message())
    other = await client.post(URL, json=tv_message(time="2026-11-26T00:00:00Z"))
    assert (first.status, other.status) == (202, 202)


async def test_replay_source_is_kept_and_other_sources_refused(
    receiver: MakeReceiver, settings
) -> None:
    client = await receiver()
    replay = await client.post(URL, json=tv_message(source="replay"))
    forged = await client.post(URL, json=tv_message(source="signed"))
    assert (replay.status, forged.status) == (202, 422)
    payload = json.loads((await _outbox(settings.database_url))[0].payload)
    assert payload["source"] == "replay"


async def test_unknown_route_and_wrong_method_answer_json(receiver: MakeReceiver) -> None:
    client = await receiver()
    missing = await client.get("/nope")
    wrong_method = await client.get(URL)
    assert (missing.status, wrong_method.status) == (404, 405)
    assert (await missing.json())["error"] == "not_found"
    assert (await wrong_method.json())["error"] == "method_not_allowed"
    assert wrong_method.headers["Allow"] == "POST"


async def test_concurrent_copies_of_one_alert_are_accepted_once(
    receiver: MakeReceiver, settings
) -> None:
    client = await receiver()
    responses = await asyncio.gather(*(client.post(URL, json=tv_message()) for _ in range(8)))
    assert sorted(r.status for r in responses) == [200] * 7 + [202]
    assert len(await _outbox(settings.database_url)) == 1


def _raw(**replace: str) -> bytes:
    """The alert message as text, with some values replaced by raw JSON text."""
    text = dumps(tv_message())
    for name, raw in replace.items():
        document = json.loads(text)
        document[name] = "@@"
        text = json.dumps(document).replace('"@@"', raw)
    return text.encode()


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (_raw(close="1" + "0" * 5000), 400, "limit_exceeded"),
        (_raw(note="[" * 5000 + "]" * 5000), 400, "limit_exceeded"),
        (_raw(note="[" * 20 + "]" * 20), 400, "limit_exceeded"),
        (_raw(passphrase='"\\ud800"'), 400, "limit_exceeded"),
        (_raw(ticker='"SP\\udfffX"'), 400, "limit_exceeded"),
        (_raw(time="1e20"), 422, "validation"),
        (_raw(time="Infinity"), 400, "not_json"),
        (_raw(time="-Infinity"), 400, "not_json"),
        (b'{"passphrase": "x", "close": NaN', 400, "not_json"),
        (b"\xff\xfe{}", 400, "limit_exceeded"),
    ],
)
async def test_inputs_that_once_answered_500_are_4xx_naming_what_is_wrong(
    receiver: MakeReceiver, body: bytes, status: int, error: str
) -> None:
    client = await receiver()
    response = await client.post(URL, data=body, headers={"Content-Type": "text/plain"})
    assert response.status == status, await response.text()
    assert (await response.json())["error"] == error


async def test_nan_null_or_missing_volume_is_accepted_as_missing(
    receiver: MakeReceiver, settings: Settings
) -> None:
    client = await receiver()
    bodies = [
        _raw(volume="NaN", time='"2026-11-20T00:00:00Z"'),
        _raw(volume="null", time='"2026-11-23T00:00:00Z"'),
        dumps(tv_message(volume=..., time="2026-11-24T00:00:00Z")).encode(),
    ]
    for body in bodies:
        response = await client.post(URL, data=body, headers={"Content-Type": "text/plain"})
        assert response.status == 202, await response.text()
    payloads = [json.loads(entry.payload) for entry in await _outbox(settings.database_url)]
    assert [p["volume"] for p in payloads] == [None, None, None]


async def test_a_non_ascii_api_token_is_401_not_500(receiver: MakeReceiver) -> None:
    client = await receiver()
    response = await client.post(
        "/predict", json={"symbol": "SPX"}, headers={"X-API-Token": "t\u00e9st\u00ff"}
    )
    assert response.status == 401


async def test_predict_bars_outside_the_bounds_are_422(receiver: MakeReceiver) -> None:
    client = await receiver()
    bar = {"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": None}
    token = {"X-API-Token": "test-api-token-0123456789"}
    for time, field in (
        ("3000-01-01T00:00:00Z", "bars.0.time"),
        ("2999-01-01T00:00:00Z", "bars.0.time"),
    ):
        response = await client.post(
            "/predict", json={"symbol": "SPX", "bars": [bar | {"time": time}]}, headers=token
        )
        assert response.status == 422
        assert [e["field"] for e in (await response.json())["detail"]] == [field]
