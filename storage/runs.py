"""Repository functions for `pipeline_runs`: one row per pipeline run, written as it goes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.contracts import utcnow
from storage.tables import PipelineRun

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"


async def start_run(
    *,
    session: AsyncSession,
    run_id: str,
    trigger: str,
    log_path: str | None,
    started_at: datetime | None = None,
) -> PipelineRun:
    row = PipelineRun(
        run_id=run_id,
        trigger=trigger,
        status=RUNNING,
        started_at=started_at or utcnow(),
        counts={},
        decisions={},
        metrics={},
        anomalies={},
        log_path=log_path,
    )
    session.add(row)
    return row


async def finish_run(
    *,
    session: AsyncSession,
    run_id: str,
    status: str,
    counts: dict[str, Any],
    decisions: dict[str, Any],
    metrics: dict[str, Any],
    anomalies: dict[str, Any],
    error: str | None = None,
    finished_at: datetime | None = None,
) -> PipelineRun:
    row = await session.get(PipelineRun, run_id)
    if row is None:
        raise LookupError(f"pipeline run {run_id} was never started")
    row.finished_at = finished_at or utcnow()
    row.duration_s = (row.finished_at - row.started_at).total_seconds()
    row.status, row.error = status, error
    row.counts, row.decisions, row.metrics, row.anomalies = counts, decisions, metrics, anomalies
    return row


async def get_run(*, session: AsyncSession, run_id: str) -> PipelineRun | None:
    return await session.get(PipelineRun, run_id)


async def list_runs(
    *, session: AsyncSession, limit: int = 50, status: str | None = None
) -> Sequence[PipelineRun]:
    """Runs newest first."""
    stmt = select(PipelineRun).order_by(PipelineRun.started_at.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(PipelineRun.status == status)
    return (await session.scalars(stmt)).all()


async def last_success(*, session: AsyncSession) -> PipelineRun | None:
    runs = await list_runs(session=session, limit=1, status=SUCCEEDED)
    return runs[0] if runs else None


async def latest_finished(*, session: AsyncSession) -> PipelineRun | None:
    """The run that finished last (succeeded or failed), whatever started it."""
    stmt = (
        select(PipelineRun)
        .where(PipelineRun.status != RUNNING, PipelineRun.finished_at.is_not(None))
        .order_by(PipelineRun.finished_at.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def fail_interrupted(*, session: AsyncSession, reason: str, keep: str | None = None) -> int:
    """Runs left `running` by a process that died are marked failed, except run `keep` (one that
    holds the live pipeline lock in another process); returns how many."""
    stmt = update(PipelineRun).where(PipelineRun.status == RUNNING)
    if keep is not None:
        stmt = stmt.where(PipelineRun.run_id != keep)
    result = await session.execute(stmt.values(status=FAILED, error=reason, finished_at=utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)
