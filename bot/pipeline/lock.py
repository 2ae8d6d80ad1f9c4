"""The pipeline lock: one run at a time across every process sharing the database.

`run_pipeline` holds it for the whole run, whoever calls it (the scheduler's jobs, `itff pipeline
run`, `itff up`). A heartbeat moves the lock's expiry forward every third of
`ITFF_PIPELINE_LOCK_TTL_SECONDS`, so the lock of a process that died is free again at most that
long after its last heartbeat.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import TransientError, utcnow
from bot.runtime import get_logger
from storage import pipeline_lock as lock_repo

log = get_logger(__name__)


class PipelineBusy(TransientError):  # noqa: N818 - named for the action, as BadInput
    """Another pipeline run holds the lock; this one did not start."""

    def __init__(self, *, run_id: str, holder: str, since: datetime) -> None:
        super().__init__(
            f"pipeline run refused: run {run_id} ({holder}) holds the pipeline lock since "
            f"{since:%Y-%m-%d %H:%M:%S} UTC; wait for it to finish (`itff pipeline runs`)"
        )
        self.run_id, self.holder, self.since = run_id, holder, since


def describe_holder(trigger: str) -> str:
    """Who takes the lock, as the refusal names it: trigger, process id and host."""
    return f"{trigger}, pid {os.getpid()} on {socket.gethostname()}"[:200]


@asynccontextmanager
async def hold_pipeline_lock(
    session_factory: async_sessionmaker[AsyncSession], *, run_id: str, holder: str, ttl: float
) -> AsyncIterator[None]:
    """Hold the lock for `run_id` while the block runs, heartbeating; raise `PipelineBusy`
    without running the block when a live lock is held by another run."""
    lease = timedelta(seconds=ttl)
    await _take(session_factory, run_id=run_id, holder=holder, lease=lease)
    beat = asyncio.create_task(_heartbeat(session_factory, run_id, lease))
    try:
        yield
    finally:
        beat.cancel()
        with suppress(asyncio.CancelledError):
            await beat
        async with session_factory() as session:
            await lock_repo.release(session=session, run_id=run_id)
            await session.commit()


async def _take(
    session_factory: async_sessionmaker[AsyncSession], *, run_id: str, holder: str, lease: timedelta
) -> None:
    """Take the lock or raise `PipelineBusy` naming its holder; a second try only when the holder
    released it between the attempt and the look at who holds it."""
    for _ in range(2):
        async with session_factory() as session:
            taken = await lock_repo.acquire(
                session=session, run_id=run_id, holder=holder, now=utcnow(), ttl=lease
            )
            other = None if taken else await lock_repo.current(session=session)
            await session.commit()
        if taken:
            return
        if other is not None:
            raise PipelineBusy(run_id=other.run_id, holder=other.holder, since=other.acquired_at)
    raise TransientError("the pipeline lock changed hands twice while taking it; run again")


async def _heartbeat(
    session_factory: async_sessionmaker[AsyncSession], run_id: str, lease: timedelta
) -> None:
    """Extend the lease every third of it until cancelled or the lock is lost."""
    while True:
        await asyncio.sleep(lease.total_seconds() / 3)
        try:
            async with session_factory() as session:
                held = await lock_repo.heartbeat(
                    session=session, run_id=run_id, now=utcnow(), ttl=lease
                )
                await session.commit()
        except Exception as exc:  # the database is away for now: the next beat tries again
            log.warning("pipeline_lock_heartbeat_failed", run_id=run_id, error=repr(exc))
            continue
        if not held:
            log.error("pipeline_lock_lost", run_id=run_id, reason="the lease expired and was taken")
            return
