"""Alerts Kafka refuses are parked, not retried forever: the real receiver, the real broker (whose
alerts topic is given a `max.message.bytes` smaller than one alert), the real SQLite outbox and the
real `itff outbox` command."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from bot.contracts import Settings
from bot.kafka import admin_client
from storage import outbox as repo
from storage.db import create_engine, create_session_factory
from tests.producers.test_kafka import read_alerts
from tests.support.cli import run_itff
from tests.support.env import child_env
from tests.support.webhook import PASSPHRASE, MakeReceiver, gauge, tv_message, until

pytestmark = pytest.mark.kafka

URL = "/webhook/tradingview"
SMALL_LIMIT = 1024  # bytes: a plain alert (~400) fits, one with a 2,000-byte note does not
KAFKA_DEFAULT_LIMIT = 1048588
NOTE = "n" * 2000


async def set_max_message_bytes(settings: Settings, limit: int) -> None:
    """The alerts topic's `max.message.bytes`, as an operator would change it; returns once the
    broker reports the new value (it applies a change asynchronously)."""
    name = "max.message.bytes"
    resource = ConfigResource(ConfigResourceType.TOPIC, settings.topics.alerts, {name: str(limit)})
    async with admin_client(settings.bootstrap) as admin:
        responses = await admin.alter_configs([resource])
        errors = [(code, message) for r in responses for code, message, *_ in r.resources]
        assert errors == [(0, None)]

        async def current() -> str:
            described = await admin.describe_configs(
                [ConfigResource(resource.resource_type, resource.name, {name: None})]
            )
            entries = [entry for r in described for *_, configs in r.resources for entry in configs]
            return next(str(value) for key, value, *_ in entries if key == name)

        await until(current, str(limit))


async def entries(settings: Settings) -> list[repo.OutboxSummary]:
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session:
            return await repo.list_outbox_entries(session=session)
    finally:
        await engine.dispose()


async def post(client: TestClient[Any, Any], message: dict[str, Any]) -> tuple[int, Any]:
    response = await client.post(URL, json=message)
    return response.status, await response.json()


async def itff(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The operator's `itff` command, run while the receiver keeps serving."""
    return await asyncio.to_thread(run_itff, child_env(settings), *args)


def _alert(day: int, **extra: Any) -> dict[str, Any]:
    return tv_message(time=f"2026-10-{day:02d}T00:00:00Z", **extra)


async def _parked_alert(client: TestClient[Any, Any], settings: Settings) -> repo.OutboxSummary:
    """Post an alert the topic refuses; return its outbox entry once it is parked."""
    status, body = await post(client, _alert(1, note=NOTE))
    assert (status, body["queued"]) == (202, True)  # refused at once, so committed to the outbox
    await until(lambda: gauge(client, "itff_outbox_parked"), 1.0)
    [entry] = await entries(settings)
    assert entry.alert_id == body["alert_id"]
    return entry


async def test_refused_alert_is_parked_newer_ones_pass_and_a_retry_delivers_it(
    receiver: MakeReceiver, kafka_settings: Settings
) -> None:
    await set_max_message_bytes(kafka_settings, SMALL_LIMIT)
    client = await receiver(base=kafka_settings, outbox_max_attempts=3)
    parked = await _parked_alert(client, kafka_settings)
    assert parked.attempts == 3
    assert parked.parked_at is not None
    assert "MessageSizeTooLargeError" in (parked.last_error or "")
    assert await gauge(client, "itff_outbox_depth") == 0.0

    status, newer = await post(client, _alert(2))
    assert (status, newer["queued"]) == (202, False)  # published at once, not held behind it
    status, again = await post(client, _alert(1, note=NOTE))  # TradingView's retry of the parked
    assert (status, again["status"]) == (200, "duplicate")

    await set_max_message_bytes(kafka_settings, KAFKA_DEFAULT_LIMIT)  # the operator's fix
    done = await itff(kafka_settings, "outbox", "retry", parked.alert_id)
    assert done.returncode == 0, done.stderr
    assert f"queued again: entry {parked.id} (alert {parked.alert_id})" in done.stdout

    records = await read_alerts(kafka_settings, 2)
    delivered = [json.loads(record.value)["alert_id"] for record in records]
    assert delivered == [newer["alert_id"], parked.alert_id]  # once each, the retried one late
    assert await entries(kafka_settings) == []
    await until(lambda: gauge(client, "itff_outbox_parked"), 0.0)


async def test_outbox_command_lists_and_drops_a_parked_alert_with_clear_errors(
    receiver: MakeReceiver, kafka_settings: Settings
) -> None:
    await set_max_message_bytes(kafka_settings, SMALL_LIMIT)
    client = await receiver(base=kafka_settings, outbox_max_attempts=1)
    parked = await _parked_alert(client, kafka_settings)
    listed = await itff(kafka_settings, "outbox", "list")
    assert listed.returncode == 0, listed.stderr
    assert "outbox: 0 queued, 1 parked" in listed.stdout
    row = next(line.split() for line in listed.stdout.splitlines() if parked.alert_id in line)
    assert row[:5] == [str(parked.id), parked.alert_id, kafka_settings.topics.alerts, "1", "parked"]
    assert "MessageSizeTooLargeError" in listed.stdout
    assert NOTE[:50] not in listed.stdout  # never the payload
    assert PASSPHRASE not in listed.stdout

    for args, message in [
        (("drop",), "give either one entry (its id or alert id) or --all-parked"),
        (("drop", "9999"), "no outbox entry has the id or alert id '9999'; see `itff outbox list`"),
        (("retry", str(parked.id), "--all"), "give either one entry (its id or alert id) or --all"),
    ]:
        refused = await itff(kafka_settings, "outbox", *args)
        assert (refused.returncode, refused.stdout) == (1, ""), refused.stderr
        assert refused.stderr.strip() == f"itff: {message}"  # one line, no traceback

    dropped = await itff(kafka_settings, "outbox", "drop", str(parked.id))
    assert dropped.returncode == 0, dropped.stderr
    assert f"dropped: entry {parked.id} (alert {parked.alert_id}, topic" in dropped.stdout
    assert "1 parked entry dropped" in dropped.stdout
    assert await entries(kafka_settings) == []
    await until(lambda: gauge(client, "itff_outbox_parked"), 0.0)  # the idle drainer re-reads
