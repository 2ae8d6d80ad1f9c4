"""The receiver's outbox without a broker: durable commits, and an outage parks nothing."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from bot.contracts import Settings
from producers.app import ENGINE
from producers.state import DELIVERY
from storage import outbox as repo
from storage.db import create_engine, create_session_factory
from tests.support.webhook import MakeReceiver, gauge, tv_message

URL = "/webhook/tradingview"
SQLITE_FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL


async def test_receiver_commits_the_outbox_with_synchronous_full(receiver: MakeReceiver) -> None:
    client = await receiver()
    async with client.app[ENGINE].connect() as connection:
        synchronous = await connection.scalar(text("PRAGMA synchronous"))
        journal = await connection.scalar(text("PRAGMA journal_mode"))
    assert (synchronous, journal) == (SQLITE_FULL, "wal")


async def test_kafka_down_counts_no_attempt_and_parks_nothing(
    receiver: MakeReceiver, settings: Settings
) -> None:
    """The drainer keeps trying to connect; none of that is a refusal of the alerts."""
    client = await receiver(outbox_max_attempts=1)
    for day in (1, 2):
        response = await client.post(URL, json=tv_message(time=f"2026-10-0{day}T00:00:00Z"))
        assert (await response.json())["queued"] is True
    await asyncio.sleep(2.0)  # several drain rounds (backoff 0.05, 0.1, 0.2, 0.4, 0.8 s)
    engine = create_engine(settings.database_url)
    async with create_session_factory(engine)() as session:
        entries = await repo.list_outbox_entries(session=session)
    await engine.dispose()
    assert [(e.attempts, e.parked_at) for e in entries] == [(0, None), (0, None)]
    assert client.app[DELIVERY].outbox.depth == 2
    assert (
        await gauge(client, "itff_outbox_depth"),
        await gauge(client, "itff_outbox_parked"),
    ) == (
        2.0,
        0.0,
    )
