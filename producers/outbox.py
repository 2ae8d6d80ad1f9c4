"""The durable outbox and its drainer.

An alert that Kafka did not confirm within the budget is committed here before the client gets
its 202. The drainer (owned by the app's `cleanup_ctx`) reconnects to Kafka with exponential backoff
and publishes the entries in the order they were accepted, deleting each once Kafka acknowledged
it. A record still in flight inside the producer is waited for, never sent a second time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import ConfigError, TransientError
from bot.runtime import get_logger
from producers.publisher import Publisher
from producers.telemetry import ReceiverMetrics
from storage import outbox as repo
from storage.tables import OutboxEntry

log = get_logger(__name__)

BATCH = 500
MIN_BACKOFF_S = 0.05
MAX_BACKOFF_S = 30.0
ACK_WAIT_S = 10.0


class Outbox:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        publisher: Publisher,
        metrics: ReceiverMetrics,
        on_delivered: Callable[[str], None] = lambda _alert_id: None,
    ) -> None:
        self._sessions = sessions
        self._on_delivered = on_delivered
        self._publisher = publisher
        self._metrics = metrics
        self._wake = asyncio.Event()
        self.in_flight: dict[str, asyncio.Future[Any]] = {}
        self.depth = 0

    async def load_depth(self) -> int:
        """Read the depth at start-up; a missing table is a configuration error."""
        try:
            async with self._sessions() as session:
                self._set_depth(await repo.outbox_depth(session=session))
        except SQLAlchemyError as exc:
            raise ConfigError(
                f"the outbox table is not readable ({type(exc).__name__}); "
                "run `itff db upgrade` against ITFF_DATABASE_URL"
            ) from exc
        return self.depth

    def _set_depth(self, depth: int) -> None:
        self.depth = max(depth, 0)
        self._metrics.outbox_depth.set(self.depth)

    async def enqueue(
        self,
        *,
        alert_id: str,
        topic: str,
        key: bytes,
        payload: bytes,
        in_flight: asyncio.Future[Any] | None = None,
    ) -> bool:
        """Commit one alert; False if it was already queued. `TransientError` if not stored.

        `in_flight` is a send that outlived its budget: the drainer waits for it instead of
        sending a second copy.
        """
        try:
            async with self._sessions() as session, session.begin():
                added = await repo.add_outbox_entry(
                    session=session, alert_id=alert_id, topic=topic, key=key, payload=payload
                )
        except SQLAlchemyError as exc:
            raise TransientError(f"the outbox could not store the alert: {exc!r}") from exc
        if added:
            if in_flight is not None:
                self.in_flight[alert_id] = in_flight
                in_flight.add_done_callback(lambda _task: self._wake.set())
            self._set_depth(self.depth + 1)
            self._wake.set()
        return added

    async def contains(self, alert_id: str) -> bool:
        if self.depth == 0:
            return False
        async with self._sessions() as session:
            return await repo.outbox_contains(session=session, alert_id=alert_id)

    async def run(self) -> None:
        """The drainer: runs until cancelled."""
        backoff = MIN_BACKOFF_S
        while True:
            try:
                progressed = await self.drain_once()
            except (SQLAlchemyError, TransientError) as exc:
                log.warning("outbox drain failed", error=repr(exc), depth=self.depth)
                progressed = False
            self._metrics.kafka_connected.set(int(self._publisher.connected))
            if not progressed:  # back off whatever wakes us: no reconnect storm while down
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = MIN_BACKOFF_S
            self._wake.clear()
            if self.depth == 0:
                await self._wake.wait()

    async def drain_once(self) -> bool:
        """Publish one batch in order; True when every entry of it was delivered."""
        if not await self._publisher.connect():
            return False
        async with self._sessions() as session:
            entries = await repo.pending_outbox_entries(session=session, limit=BATCH)
        if not entries:
            self._set_depth(0)
            return True
        sends = [(entry, await self._send(entry)) for entry in entries]
        await asyncio.wait([task for _, task in sends], timeout=ACK_WAIT_S)
        return await self._settle(sends)

    async def _send(self, entry: OutboxEntry) -> asyncio.Future[Any]:
        delivery = self.in_flight.get(entry.alert_id)
        if delivery is None or (delivery.done() and delivery.exception() is not None):
            delivery = await self._publisher.send(entry.topic, entry.key, entry.payload)
            self.in_flight[entry.alert_id] = delivery
        return delivery

    async def _settle(self, sends: list[tuple[OutboxEntry, asyncio.Future[Any]]]) -> bool:
        delivered = [e.id for e, t in sends if t.done() and t.exception() is None]
        for entry, task in sends:  # a retry arriving after the drain is still a duplicate
            if task.done() and task.exception() is None:
                self._on_delivered(entry.alert_id)
        failed = [(e.id, t.exception()) for e, t in sends if t.done() and t.exception()]
        for entry, task in sends:
            if task.done():
                self.in_flight.pop(entry.alert_id, None)
        async with self._sessions() as session, session.begin():
            await repo.delete_outbox_entries(session=session, ids=delivered)
            if failed:
                error = repr(failed[0][1])
                await repo.record_outbox_failure(
                    session=session, ids=[i for i, _ in failed], error=error
                )
        self._set_depth(self.depth - len(delivered))
        if failed or len(delivered) < len(sends):
            log.warning("outbox entries not yet delivered", waiting=len(sends) - len(delivered))
            return False
        log.info("outbox drained", delivered=len(delivered), depth=self.depth)
        return True
