"""Signals to every destination that wants them, at least once, each recorded once.

A batch of signals at a time: what is already recorded (a redelivery after a crash) is skipped;
each destination gets its signals in order, the destinations concurrently. Each delivery is
retried with backoff (`bot.core.notifications.backoff`) on a 5xx, a timeout, a connection error
or a 429 after its `Retry-After`, until delivered, refused for good (another 4xx) or
`ITFF_NOTIFIER_PARK_AFTER_SECONDS` passed: then parked with the last error. Each result is stored
as soon as known; the batch's offsets are committed once all are.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Signal, utcnow
from bot.core.notifications import backoff
from bot.runtime import get_logger
from consumers.notifier import telemetry
from consumers.notifier.destinations import Destination
from storage.notifications import Status, record_notification, recorded

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Result:
    destination: str
    status: Status
    attempts: int
    error: str | None


class Deliverer:
    def __init__(
        self,
        destinations: Sequence[Destination],
        *,
        http: aiohttp.ClientSession,
        session_factory: async_sessionmaker[AsyncSession],
        park_after: float,
    ) -> None:
        self.destinations = list(destinations)
        self.http = http
        self.session_factory = session_factory
        self.park_after = park_after

    async def handle(self, signals: Sequence[Signal]) -> list[Result]:
        """Deliver a batch: each destination gets the signals it wants and has not had yet, in
        their order; the destinations in parallel."""
        if not signals:
            return []
        async with self.session_factory() as session:
            done = await recorded(session=session, signal_ids={s.signal_id for s in signals})
        queues = [(d, self._queue(d, signals, done)) for d in self.destinations]
        per_destination = await asyncio.gather(*(self._deliver_all(d, q) for d, q in queues if q))
        return [result for results in per_destination for result in results]

    def _queue(
        self, destination: Destination, signals: Sequence[Signal], done: set[tuple[str, str]]
    ) -> list[Signal]:
        queue: dict[str, Signal] = {}
        for signal in signals:
            if not destination.wants.matches(signal):
                telemetry.DELIVERIES.labels(destination.name, "filtered").inc()
            elif (destination.name, signal.signal_id) in done or signal.signal_id in queue:
                telemetry.DELIVERIES.labels(destination.name, "duplicate").inc()
            else:
                queue[signal.signal_id] = signal
        return list(queue.values())

    async def _deliver_all(self, destination: Destination, queue: list[Signal]) -> list[Result]:
        """One after the other, each recorded as soon as known: a crash while another
        destination is still retrying does not send this one's again."""
        results = []
        for signal in queue:
            result = await self.deliver(destination, signal)
            await self.record(signal, [result])
            results.append(result)
        return results

    async def deliver(self, destination: Destination, signal: Signal) -> Result:
        """Attempts until delivered, refused or out of time; never raises for the destination."""
        deadline = time.monotonic() + self.park_after
        attempt = 0
        while True:
            attempt += 1
            outcome = await destination.send(self.http, signal)
            telemetry.ATTEMPTS.labels(destination.name, outcome.label).inc()
            if outcome.ok:
                elapsed = (utcnow() - signal.emitted_at).total_seconds()
                telemetry.LATENCY.labels(destination.name).observe(max(0.0, elapsed))
                return Result(destination.name, "delivered", attempt, None)
            delay = backoff(attempt, outcome.retry_after)
            if not outcome.retry or time.monotonic() + delay > deadline:
                log.warning(
                    "notification parked",
                    destination=destination.name,
                    signal_id=signal.signal_id,
                    attempts=attempt,
                    error=outcome.error,
                )
                return Result(destination.name, "parked", attempt, outcome.error)
            log.info(
                "notification retried",
                destination=destination.name,
                signal_id=signal.signal_id,
                attempt=attempt,
                error=outcome.error,
                delay_s=round(delay, 2),
            )
            await asyncio.sleep(delay)

    async def record(self, signal: Signal, results: Sequence[Result]) -> None:
        if not results:
            return
        wire = signal.model_dump_json()
        async with self.session_factory() as session, session.begin():
            for result in results:
                await record_notification(
                    session=session,
                    destination=result.destination,
                    signal_id=signal.signal_id,
                    status=result.status,
                    attempts=result.attempts,
                    last_error=result.error,
                    signal=wire,
                )
        for result in results:
            telemetry.DELIVERIES.labels(result.destination, result.status).inc()
