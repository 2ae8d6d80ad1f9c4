"""The receiver against the real broker: alerts land on the alerts topic, and alerts accepted while
Kafka was unreachable are delivered exactly once when it is back."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bot.contracts import Settings
from producers.state import DELIVERY, READINESS
from tests.support.kafka import topic_reader
from tests.support.webhook import PASSPHRASE, MakeReceiver, down_bootstrap, tv_message

pytestmark = pytest.mark.kafka

URL = "/webhook/tradingview"
READ_TIMEOUT_S = 60.0


async def read_alerts(settings: Settings, expected: int) -> list[Any]:
    """Every record of the test's alerts topic, read until `expected` arrived (then a bit more)."""
    consumer = topic_reader(settings.bootstrap, settings.topics.alerts)
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + READ_TIMEOUT_S
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            fresh = [record for part in batch.values() for record in part]
            records.extend(fresh)
            if len(records) >= expected and not fresh:
                break
    finally:
        await consumer.stop()
    return records


def _bar(day: int, symbol: str = "SPX") -> dict[str, Any]:
    return tv_message(ticker=symbol, time=f"2026-10-{day:02d}T00:00:00Z")


async def test_posted_alert_is_on_the_alerts_topic(
    receiver: MakeReceiver, kafka_settings: Settings
) -> None:
    client = await receiver(base=kafka_settings)
    response = await client.post(URL, json=tv_message())
    assert response.status == 202
    body = await response.json()
    assert body["queued"] is False
    [record] = await read_alerts(kafka_settings, 1)
    assert record.key == b"SPX"
    alert = json.loads(record.value)
    assert alert["alert_id"] == body["alert_id"]
    assert (alert["symbol"], alert["close"], alert["source"]) == ("SPX", 105.0, "tradingview")
    assert PASSPHRASE.encode() not in record.value
    assert "passphrase" not in alert["extra"]


async def test_alerts_accepted_while_kafka_is_down_are_delivered_once_when_it_is_back(
    receiver: MakeReceiver, kafka_settings: Settings
) -> None:
    client = await receiver(base=kafka_settings, kafka_bootstrap=down_bootstrap())
    delivery = client.app[DELIVERY]
    days = [(day, symbol) for day in (1, 2, 3) for symbol in ("SPX", "NDX")]
    down = [await client.post(URL, json=_bar(day, symbol)) for day, symbol in days]
    assert {r.status for r in down} == {202}
    assert [(await r.json())["queued"] for r in down] == [True] * 6
    assert delivery.outbox.depth == 6

    delivery.publisher.bootstrap = kafka_settings.bootstrap  # the broker is reachable again
    during = [await client.post(URL, json=_bar(day)) for day in (4, 5)]
    retries = [await client.post(URL, json=_bar(day)) for day in (1, 4)]
    assert {r.status for r in during} == {202}
    assert {r.status for r in retries} == {200}

    accepted = [(await r.json())["alert_id"] for r in (*down, *during)]
    records = await read_alerts(kafka_settings, len(accepted))
    ids = [json.loads(record.value)["alert_id"] for record in records]
    assert sorted(ids) == sorted(accepted)  # every accepted alert, each exactly once
    spx = [json.loads(r.value)["bar_time"][:10] for r in records if r.key == b"SPX"]
    assert spx == [f"2026-10-0{day}" for day in (1, 2, 3, 4, 5)]  # in order per symbol
    assert delivery.outbox.depth == 0


async def test_readiness_follows_the_broker_with_one_probe_per_interval(
    receiver: MakeReceiver, kafka_settings: Settings
) -> None:
    client = await receiver(base=kafka_settings, kafka_bootstrap=down_bootstrap())
    readiness = client.app[READINESS]
    assert (await client.get("/ready")).status == 503
    client.app[DELIVERY].publisher.bootstrap = kafka_settings.bootstrap  # the broker is back
    await client.post(URL, json=_bar(9))  # the outbox drainer reconnects
    loop = asyncio.get_running_loop()
    started, calls = loop.time(), 0
    while (response := await client.get("/ready")).status != 200:
        calls += 1
        assert loop.time() - started < 4 * readiness.interval, await response.text()
        await asyncio.sleep(0.05)
    elapsed = loop.time() - started
    assert await response.json() == {"status": "ready", "kafka": True, "outbox_depth": 0}
    assert calls > 10
    assert readiness.probes <= elapsed / readiness.interval + 1  # not one per call


async def test_outbox_left_by_a_stopped_receiver_is_drained_by_the_next_one(
    receiver: MakeReceiver, kafka_settings: Settings
) -> None:
    first = await receiver(base=kafka_settings, kafka_bootstrap=down_bootstrap())
    queued = [await first.post(URL, json=_bar(day)) for day in (6, 7, 8)]
    assert [(await r.json())["queued"] for r in queued] == [True] * 3
    await first.close()

    second = await receiver(base=kafka_settings)
    retry = await second.post(URL, json=_bar(6))  # TradingView's retry of a queued alert
    assert retry.status == 200
    records = await read_alerts(kafka_settings, 3)
    ids = sorted(json.loads(r.value)["alert_id"] for r in records)
    assert ids == sorted([(await r.json())["alert_id"] for r in queued])
    ready = await (await second.get("/ready")).json()
    assert ready == {"status": "ready", "kafka": True, "outbox_depth": 0}
