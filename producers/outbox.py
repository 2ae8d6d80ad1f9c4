"""The durable outbox and its drainer.

An alert that Kafka did not confirm within the budget is committed here before the client gets
its 202. The drainer (owned by the app's `cleanup_ctx`) reconnects to Kafka with exponential backoff
and publishes the queued entries in the order they were accepted, deleting each once Kafka
acknowledged it. A record still in flight inside the producer is waited for, never sent a second
time.

An entry Kafka refuses outright (`publisher.refuses_record`: too large, topic not authorised)
counts an attempt; after `max_attempts` it is parked: kept with its last error, no longer drained
and no longer holding newer alerts back, until `itff outbox retry` queues it again or `drop`
deletes it. Any other failure (Kafka down, a timeout) keeps the entry queued without counting:
an outage must not park the alerts that wait it out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import ConfigError, TransientError
from bot.runtime import get_logger
from producers.publisher import Publisher, refuses_record
from producers.telemetry import ReceiverMetrics
from storage import outbox as repo
from storage.tables import OutboxEntry

log = get_logger(__name__)

BATCH = 500
MIN_BACKOFF_S = 0.05
MAX_BACKOFF_S = 30.0
ACK_WAIT_S = 10.0
IDLE_RECHECK_S = 5.0  # `itff outbox retry` changes the table from another process

Sends = list[tuple[OutboxEntry, asyncio.Future[Any]]]
Failures = list[tuple[OutboxEntry, BaseException]]


class Outbox:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        publisher: Publisher,
        metrics: ReceiverMetrics,
        max_attempts: int,
        on_delivered: Callable[[str], None] = lambda _alert_id: None,
    ) -> None:
        self._sessions = sessions
        self._on_delivered = on_delivered
        self._publisher = publisher
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._wake = asyncio.Event()
        self.in_flight: dict[str, asyncio.Future[Any]] = {}
        self.depth = 0  # queued entries: while any, new alerts join the tail
        self.parked = 0

    async def load_counts(self) -> repo.OutboxCounts:
        """Read the counts at start-up; a missing table is a configuration error."""
        try:
            async with self._sessions() as session:
                counts = await repo.outbox_counts(session=session)
        except SQLAlchemyError as exc:
            raise ConfigError(
                f"the outbox table is not readable ({type(exc).__name__}); "
                "run `itff db upgrade` against ITFF_DATABASE_URL"
            ) from exc
        self._set_counts(depth=counts.queued, parked=counts.parked)
        return counts

    def _set_counts(self, *, depth: int, parked: int) -> None:
        self.depth, self.parked = max(depth, 0), max(parked, 0)
        self._metrics.outbox_depth.set(self.depth)
        self._metrics.outbox_parked.set(self.parked)

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
            self._set_counts(depth=self.depth + 1, parked=self.parked)
            self._wake.set()
        return added

    async def contains(self, alert_id: str) -> bool:
        """Queued or parked: a retry of either is a duplicate."""
        if self.depth == 0 and self.parked == 0:
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
                await self._idle()

    async def _idle(self) -> None:
        """Wait for an enqueue; meanwhile re-read the counts every `IDLE_RECHECK_S`, so entries
        queued again by `itff outbox retry` (and the parked gauge after `drop`) are seen."""
        while not self._wake.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_RECHECK_S):
                    await self._wake.wait()
            try:
                async with self._sessions() as session:
                    counts = await repo.outbox_counts(session=session)
            except SQLAlchemyError as exc:
                log.warning("outbox counts not readable", error=repr(exc))
                continue
            self._set_counts(depth=max(self.depth, counts.queued), parked=counts.parked)
            if self.depth:
                return

    async def drain_once(self) -> bool:
        """Publish one batch in order; True when every entry of it was delivered or parked."""
        if not await self._publisher.connect():
            return False
        async with self._sessions() as session:
            entries = await repo.pending_outbox_entries(session=session, limit=BATCH)
            if not entries:
                counts = await repo.outbox_counts(session=session)
                self._set_counts(depth=counts.queued, parked=counts.parked)
                return True
        # at least what is visibly queued (entries queued again by `itff outbox retry`)
        self._set_counts(depth=max(self.depth, len(entries)), parked=self.parked)
        sends = [(entry, await self._send(entry)) for entry in entries]
        await asyncio.wait([task for _, task in sends], timeout=ACK_WAIT_S)
        return await self._settle(sends)

    async def _send(self, entry: OutboxEntry) -> asyncio.Future[Any]:
        delivery = self.in_flight.get(entry.alert_id)
        if delivery is None or (delivery.done() and delivery.exception() is not None):
            delivery = await self._publisher.send(entry.topic, entry.key, entry.payload)
            self.in_flight[entry.alert_id] = delivery
        return delivery

    async def _settle(self, sends: Sends) -> bool:
        delivered = [e for e, t in sends if t.done() and t.exception() is None]
        for entry in delivered:  # a retry arriving after the drain is still a duplicate
            self._on_delivered(entry.alert_id)
        failed: Failures = [(e, x) for e, t in sends if t.done() and (x := t.exception())]
        for entry, task in sends:
            if task.done():
                self.in_flight.pop(entry.alert_id, None)
        parked = await self._store_outcome(delivered, failed)
        self._set_counts(
            depth=self.depth - len(delivered) - len(parked), parked=self.parked + len(parked)
        )
        waiting = len(sends) - len(delivered) - len(parked)
        if waiting:
            log.warning("outbox entries not yet delivered", waiting=waiting)
            return False
        log.info("outbox drained", delivered=len(delivered), depth=self.depth)
        return True

    async def _store_outcome(self, delivered: list[OutboxEntry], failed: Failures) -> list[str]:
        """Delete the delivered entries, keep each failure's error, park the exhausted entries;
        the alert ids parked now."""
        refused = {entry.id: error for entry, error in failed if refuses_record(error)}
        async with self._sessions() as session, session.begin():
            await repo.delete_outbox_entries(session=session, ids=[e.id for e in delivered])
            for (error, counted), ids in _by_error(failed).items():
                await repo.record_outbox_failure(
                    session=session, ids=ids, error=error, counted=counted
                )
            parked = await repo.park_exhausted_entries(
                session=session, ids=list(refused), max_attempts=self._max_attempts
            )
        if parked:
            log.error(
                "outbox entries parked: Kafka refused them; see `itff outbox list`",
                alert_ids=parked,
                attempts=self._max_attempts,
                error=repr(next(iter(refused.values()))),
            )
        return parked


def _by_error(failed: Failures) -> dict[tuple[str, bool], list[int]]:
    """Entry ids grouped by (error text, whether it counts an attempt)."""
    groups: dict[tuple[str, bool], list[int]] = {}
    for entry, error in failed:
        groups.setdefault((repr(error), refuses_record(error)), []).append(entry.id)
    return groups
