"""One signal to every destination that wants it, at least once, each recorded once.

The destinations already recorded for the signal (a redelivery after a crash) are skipped; the
others are attempted concurrently, retried with backoff (`bot.core.notifications.backoff`) on a
5xx, a timeout, a connection error or a 429 after its `Retry-After`, until delivered, refused for
good (another 4xx) or `ITFF_NOTIFIER_PARK_AFTER_SECONDS` passed: then parked with the last error.
Each result is stored before the handler returns, and the offset is committed only after that.
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
from storage.notifications import Status, record_notification, recorded_destinations

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

    async def handle(self, signal: Signal) -> list[Result]:
        """Deliver to the destinations that want the signal and have not had it yet."""
        wanted = [d for d in self.destinations if d.wants.matches(signal)]
        for skipped in self.destinations:
            if skipped not in wanted:
                telemetry.DELIVERIES.labels(skipped.name, "filtered").inc()
        if not wanted:
            return []
        async with self.session_factory() as session:
            done = await recorded_destinations(
                session=session, signal_id=signal.signal_id, destinations=[d.name for d in wanted]
            )
        for name in done:
            telemetry.DELIVERIES.labels(name, "duplicate").inc()
        pending = [d for d in wanted if d.name not in done]
        return list(await asyncio.gather(*(self._deliver_and_record(d, signal) for d in pending)))

    async def _deliver_and_record(self, destination: Destination, signal: Signal) -> Result:
        """Recorded as soon as known: a crash while another destination is still retrying
        does not send this one again."""
        result = await self.deliver(destination, signal)
        await self.record(signal, [result])
        return result

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
