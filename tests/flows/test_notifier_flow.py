"""Alerts in, signals out to a signed webhook, Telegram and Discord: the real consumer and the real
`itff notifier` process through the real broker, the notifier killed (SIGKILL) mid-stream and
started again. Each signal reaches each destination exactly once, and no secret reaches its log.

The kill lands while every destination has delivered some signals and is failing (503) on the
next: the notifier holds retries in flight, none delivered-but-unrecorded. (A kill between a
destination's 2xx and its record is the at-least-once residue: a webhook receiver drops the
repeated `webhook-id`; docs/subscribers.md.)"""

from __future__ import annotations

import asyncio
import signal as signals
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Settings
from consumers.runner import running_consumer
from tests.support.cli import ROOT
from tests.support.consumer import (
    SEED_BARS,
    alerts_for,
    eventually,
    produce_alerts,
    publish_champions,
    read_topic,
    sample_bars,
    seed_bars,
    signals_of,
)
from tests.support.destinations import DISCORD_PATH, TOKEN, Destinations, destination_servers
from tests.support.env import child_env
from tests.support.webhook import new_secret

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
ALERTS = 4
EVERY_ACTION = "buy,sell,hold"


def start_notifier(settings: Settings, stubs: Destinations, log: Path) -> subprocess.Popen[bytes]:
    env = child_env(
        settings,
        ITFF_LOG_JSON="true",
        ITFF_NOTIFIER_METRICS_PORT="0",
        ITFF_SIGNAL_WEBHOOK_ACTIONS=EVERY_ACTION,
        ITFF_TELEGRAM_ACTIONS=EVERY_ACTION,
        ITFF_DISCORD_ACTIONS=EVERY_ACTION,
        PYTHONPATH=str(ROOT),
        **stubs.env(),
    )
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", "from bot.cli import main; main()", "notifier"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def logged(log: Path, text: str, count: int = 1) -> bool:
    content = await asyncio.to_thread(lambda: log.read_text() if log.exists() else "")
    return content.count(text) >= count


@pytest.fixture
async def stubs() -> AsyncIterator[Destinations]:
    async with destination_servers(new_secret()) as servers:
        yield servers


async def test_each_signal_reaches_each_destination_exactly_once_across_a_notifier_kill(
    kafka_settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    stubs: Destinations,
    tmp_path: Path,
) -> None:
    settings = kafka_settings
    bars = sample_bars("SPX")
    champions = publish_champions(settings, "SPX")
    await seed_bars(session_factory, "SPX", bars.iloc[:SEED_BARS])
    alerts = alerts_for("SPX", bars.iloc[SEED_BARS : SEED_BARS + ALERTS])
    expected = ALERTS * len(champions)
    for stub in stubs.all():  # a few delivered, then down for a while
        stub.fail(*[503] * 5, after=2)
    stubs.telegram.script.insert(0, (429, {"Retry-After": "1"}))
    log = tmp_path / "notifier.log"
    notifier = start_notifier(settings, stubs, log)
    try:
        assert await eventually(lambda: logged(log, '"notifier ready"'), within=90)
        async with running_consumer(settings):
            await produce_alerts(settings.bootstrap, settings.topics.alerts, alerts)
            values = await read_topic(
                settings.bootstrap, settings.topics.signals, until=lambda v: len(v) >= expected
            )
            assert await eventually(lambda: failing(stubs))
            notifier.send_signal(signals.SIGKILL)  # mid-stream: retries in flight
            notifier.wait(30)
            assert all(len(s.accepted) == 2 for s in stubs.all())
            notifier = start_notifier(settings, stubs, log)

            async def all_delivered() -> bool:
                return all(len(s.ids()) >= expected for s in stubs.all())

            delivered = await eventually(all_delivered, within=180)
            counts = {s.name: len(s.ids()) for s in stubs.all()}
            assert delivered, f"{counts} of {expected}: {log.read_text()[-3000:]}"
            await asyncio.sleep(1.0)  # a duplicate, if any, would arrive now
    finally:
        if notifier.poll() is None:
            notifier.send_signal(signals.SIGTERM)
            notifier.wait(30)
    ids = {s.signal_id for s in signals_of(values)}
    assert len(ids) == expected
    for stub in stubs.all():
        assert stub.ids() == dict.fromkeys(ids, 1), stub.name
    text = log.read_text()
    assert text.count('"notifier ready"') == 2
    assert TOKEN not in text
    assert DISCORD_PATH.rsplit("/", 1)[1] not in text
    assert stubs.secret not in text


async def failing(stubs: Destinations) -> bool:
    """Each destination delivered its first signals and refused the next at least once."""
    return all(len(s.accepted) == s.after and s.refused >= 1 for s in stubs.all())
