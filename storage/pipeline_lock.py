"""Repository functions for `pipeline_lock`: leases held in the database, across processes.

A row per lease name: `pipeline` (one pipeline run at a time, bot/pipeline/lock.py) and
`scheduler` (the one scheduler process that runs the jobs, bot/pipeline/leader.py). Taking a lease
is one statement, atomic on SQLite and PostgreSQL alike: insert the row, or, when it exists, take
it over only if its holder stopped heartbeating (`expires_at` has passed).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.tables import PipelineLock

PIPELINE = "pipeline"
SCHEDULER = "scheduler"


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"the pipeline lock needs SQLite or PostgreSQL, not {dialect}")
    return sqlite.insert if dialect == "sqlite" else postgresql.insert


async def acquire(
    *,
    session: AsyncSession,
    run_id: str,
    holder: str,
    now: datetime,
    ttl: timedelta,
    name: str = PIPELINE,
) -> bool:
    """Take the lease `name` for `run_id` until `now + ttl`; False while another's is live."""
    stmt = _insert(session)(PipelineLock).values(
        name=name, run_id=run_id, holder=holder, acquired_at=now, expires_at=now + ttl
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[PipelineLock.name],
        set_={
            "run_id": stmt.excluded.run_id,
            "holder": stmt.excluded.holder,
            "acquired_at": stmt.excluded.acquired_at,
            "expires_at": stmt.excluded.expires_at,
        },
        where=PipelineLock.expires_at < now,
    ).returning(PipelineLock.run_id)
    return (await session.execute(stmt)).scalar_one_or_none() == run_id


async def heartbeat(
    *, session: AsyncSession, run_id: str, now: datetime, ttl: timedelta, name: str = PIPELINE
) -> bool:
    """Extend the lease `name` of `run_id` to `now + ttl`; False when it no longer holds it."""
    stmt = (
        update(PipelineLock)
        .where(PipelineLock.name == name, PipelineLock.run_id == run_id)
        .values(expires_at=now + ttl)
        .returning(PipelineLock.run_id)
    )
    return (await session.execute(stmt)).scalar_one_or_none() == run_id


async def release(*, session: AsyncSession, run_id: str, name: str = PIPELINE) -> None:
    """Give the lease `name` up, if `run_id` still holds it (never a successor's)."""
    await session.execute(
        delete(PipelineLock).where(PipelineLock.name == name, PipelineLock.run_id == run_id)
    )


async def current(*, session: AsyncSession, name: str = PIPELINE) -> PipelineLock | None:
    """The lease's row, live or expired; None when nobody holds it."""
    return await session.get(PipelineLock, name, populate_existing=True)
