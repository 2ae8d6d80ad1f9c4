"""The scheduler's leader lease: of the scheduler processes sharing a database, one runs the jobs.

The lease is the row `scheduler` of `pipeline_lock` (the pipeline lock's table and statements), so
it works the same on SQLite and PostgreSQL. The leader moves its expiry to now +
`ITFF_SCHEDULER_LEADER_TTL_SECONDS` every third of it; a standby tries to take the lease at the
same pace, which succeeds once the leader stopped beating and the lease expired. A leader that
cannot renew its lease for a whole TTL (database away, process stalled) steps down before anybody
else can take it over, so two leaders never run jobs at the same time for longer than the clocks of
their hosts disagree.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import utcnow
from bot.pipeline import telemetry as m
from bot.pipeline.lock import describe_holder
from bot.runtime import get_logger
from storage import pipeline_lock as lock_repo

log = get_logger(__name__)

Transition = Callable[[], Awaitable[None]]


class LeaderLease:
    """Takes, renews and gives up the scheduler's lease; calls `on_elected` when this process
    becomes the leader and `on_deposed` when it stops being it (lease lost or not renewable)."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        ttl: float,
        on_elected: Transition,
        on_deposed: Transition,
    ) -> None:
        self.session_factory = session_factory
        self.lease = timedelta(seconds=ttl)
        self.on_elected, self.on_deposed = on_elected, on_deposed
        self.token = uuid.uuid4().hex
        self.holder = describe_holder("scheduler")
        self.leading = False
        self._renewed = 0.0  # monotonic time of the last successful take or renewal
        self._seen_leader = ""
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """One attempt now (a lone scheduler leads at once), then the beat in the background."""
        await self._step()
        self._task = asyncio.create_task(self._beat(), name="scheduler-leader-lease")

    async def stop(self) -> None:
        """Stop beating and give the lease up, so a standby takes over at its next attempt."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        if self.leading:
            await self._give_up("stopped")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                await self._step()
            except Exception as exc:  # the database is away for now: the next beat tries again
                log.warning("scheduler_lease_failed", leading=self.leading, error=repr(exc))
                if self.leading and time.monotonic() - self._renewed >= self.lease.total_seconds():
                    await self._depose("the lease could not be renewed for a whole TTL")

    async def _step(self) -> None:
        """Renew the lease while leading, else try to take it; act on the change."""
        async with self.session_factory() as session:
            held = await (self._renew(session) if self.leading else self._take(session))
            await session.commit()
        if held:
            self._renewed = time.monotonic()
            if not self.leading:
                await self._elect()
        elif self.leading:
            await self._depose("the lease expired and another scheduler took it")

    async def _renew(self, session: AsyncSession) -> bool:
        return await lock_repo.heartbeat(
            session=session, run_id=self.token, now=utcnow(), ttl=self.lease,
            name=lock_repo.SCHEDULER,
        )  # fmt: skip

    async def _take(self, session: AsyncSession) -> bool:
        taken = await lock_repo.acquire(
            session=session, run_id=self.token, holder=self.holder, now=utcnow(), ttl=self.lease,
            name=lock_repo.SCHEDULER,
        )  # fmt: skip
        if taken:
            return True
        other = await lock_repo.current(session=session, name=lock_repo.SCHEDULER)
        if other is not None and other.run_id != self._seen_leader:
            self._seen_leader = other.run_id  # logged once per leader, not at every poll
            log.info("scheduler_standby", leader=other.holder, until=other.expires_at.isoformat())
        return False

    async def _elect(self) -> None:
        self.leading = True
        m.SCHEDULER_LEADER.set(1)
        m.LEADER_CHANGES.labels("elected").inc()
        log.info("scheduler_leader_elected", holder=self.holder, ttl_s=self.lease.total_seconds())
        try:
            await self.on_elected()
        except Exception:
            await self._give_up("the jobs could not start")
            raise

    async def _depose(self, reason: str, *, notify: bool = True) -> None:
        self.leading = False
        m.SCHEDULER_LEADER.set(0)
        m.LEADER_CHANGES.labels("deposed").inc()
        log.warning("scheduler_leader_stepped_down", holder=self.holder, reason=reason)
        if notify:
            await self.on_deposed()

    async def _give_up(self, reason: str) -> None:
        """Step down and delete the lease row, so a standby need not wait for it to expire."""
        await self._depose(reason, notify=False)
        async with self.session_factory() as session:
            await lock_repo.release(session=session, run_id=self.token, name=lock_repo.SCHEDULER)
            await session.commit()
