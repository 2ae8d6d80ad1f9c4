"""Repository functions for model versions, model events and backtest equity curves.

The pipeline writes them when it publishes and promotes; the dashboard and the scheduler's
verification job read them. Keyword-only, each with an explicit session; callers commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.contracts import utcnow
from storage.tables import BacktestEquity, ModelEventRow, ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"
RETIRED = "retired"
PRUNED = "pruned"


async def add_version(
    *,
    session: AsyncSession,
    key: str,
    version: str,
    symbol: str,
    target: str,
    model_type: str,
    sha256: str,
    metrics: dict[str, Any],
    train_start: datetime | None,
    train_end: datetime | None,
    run_id: str | None,
) -> ModelVersion:
    """Record a freshly published version as a challenger (idempotent on key and version)."""
    row = await session.get(ModelVersion, (key, version))
    if row is None:
        row = ModelVersion(model_key=key, version=version, status=CHALLENGER, created_at=utcnow())
        session.add(row)
    row.symbol, row.target, row.model_type, row.sha256 = symbol, target, model_type, sha256
    row.metrics, row.train_start, row.train_end, row.run_id = (
        metrics,
        train_start,
        train_end,
        run_id,
    )
    return row


async def get_version(*, session: AsyncSession, key: str, version: str) -> ModelVersion | None:
    return await session.get(ModelVersion, (key, version))


async def champion_row(*, session: AsyncSession, key: str) -> ModelVersion | None:
    stmt = select(ModelVersion).where(
        ModelVersion.model_key == key, ModelVersion.status == CHAMPION
    )
    return (await session.scalars(stmt)).first()


async def list_versions(
    *, session: AsyncSession, key: str | None = None, status: str | None = None
) -> Sequence[ModelVersion]:
    """Versions newest first, optionally of one key and/or one status."""
    stmt = select(ModelVersion).order_by(
        ModelVersion.created_at.desc(), ModelVersion.version.desc()
    )
    if key is not None:
        stmt = stmt.where(ModelVersion.model_key == key)
    if status is not None:
        stmt = stmt.where(ModelVersion.status == status)
    return (await session.scalars(stmt)).all()


async def set_champion(
    *, session: AsyncSession, key: str, version: str, at: datetime | None = None
) -> None:
    """Make `version` the one champion row of `key`; a former champion becomes `retired`."""
    await session.execute(
        update(ModelVersion)
        .where(
            ModelVersion.model_key == key,
            ModelVersion.status == CHAMPION,
            ModelVersion.version != version,
        )
        .values(status=RETIRED)
    )
    await session.execute(
        update(ModelVersion)
        .where(ModelVersion.model_key == key, ModelVersion.version == version)
        .values(status=CHAMPION, promoted_at=at or utcnow())
    )


async def mark_pruned(*, session: AsyncSession, key: str, versions: Sequence[str]) -> None:
    """Versions whose files were deleted: kept as history, their equity curves dropped."""
    if not versions:
        return
    await session.execute(
        update(ModelVersion)
        .where(ModelVersion.model_key == key, ModelVersion.version.in_(versions))
        .values(status=PRUNED)
    )
    await session.execute(
        delete(BacktestEquity).where(
            BacktestEquity.model_key == key, BacktestEquity.version.in_(versions)
        )
    )


async def mark_verified(
    *, session: AsyncSession, key: str, version: str, ok: bool, at: datetime | None = None
) -> None:
    await session.execute(
        update(ModelVersion)
        .where(ModelVersion.model_key == key, ModelVersion.version == version)
        .values(verification_ok=ok, last_verified_at=at or utcnow())
    )


async def add_event(
    *,
    session: AsyncSession,
    key: str,
    version: str,
    previous_version: str | None,
    event: str,
    reason: str,
    at: datetime | None = None,
) -> ModelEventRow:
    row = ModelEventRow(
        model_key=key,
        version=version,
        previous_version=previous_version,
        event=event,
        reason=reason,
        at=at or utcnow(),
    )
    session.add(row)
    return row


async def list_events(
    *, session: AsyncSession, key: str | None = None, limit: int = 100
) -> Sequence[ModelEventRow]:
    """Champion changes, newest first."""
    stmt = select(ModelEventRow).order_by(ModelEventRow.id.desc()).limit(limit)
    if key is not None:
        stmt = stmt.where(ModelEventRow.model_key == key)
    return (await session.scalars(stmt)).all()


async def replace_equity(
    *, session: AsyncSession, key: str, version: str, rows: Sequence[dict[str, Any]]
) -> int:
    """Store a version's backtest equity curve (`time, position, strategy_return, equity`)."""
    await session.execute(
        delete(BacktestEquity).where(
            BacktestEquity.model_key == key, BacktestEquity.version == version
        )
    )
    if rows:  # a bulk INSERT (executemany): curves have thousands of points
        await session.execute(
            insert(BacktestEquity), [{"model_key": key, "version": version, **row} for row in rows]
        )
    return len(rows)


async def equity_curve(
    *, session: AsyncSession, key: str, version: str
) -> Sequence[BacktestEquity]:
    stmt = (
        select(BacktestEquity)
        .where(BacktestEquity.model_key == key, BacktestEquity.version == version)
        .order_by(BacktestEquity.time)
    )
    return (await session.scalars(stmt)).all()
