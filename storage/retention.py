"""Deletes for the retention policy (bot/pipeline/retention.py). Bars are never deleted here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.tables import LiveMetricSnapshot, Outcome, SignalRow

_CHUNK = 900  # ids per IN (...)


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def delete_outcomes_before(*, session: AsyncSession, before: datetime) -> int:
    """Outcomes resolved before `before`."""
    result = await session.execute(delete(Outcome).where(Outcome.resolved_at < before))
    return _rowcount(result)


async def delete_signals_before(*, session: AsyncSession, before: datetime) -> int:
    """Signals emitted before `before`, with their outcomes (an outcome needs its signal)."""
    stale = select(SignalRow.signal_id).where(SignalRow.emitted_at < before)
    await session.execute(delete(Outcome).where(Outcome.signal_id.in_(stale)))
    result = await session.execute(delete(SignalRow).where(SignalRow.emitted_at < before))
    return _rowcount(result)


async def delete_live_metrics_before(*, session: AsyncSession, before: datetime) -> int:
    result = await session.execute(
        delete(LiveMetricSnapshot).where(LiveMetricSnapshot.computed_at < before)
    )
    return _rowcount(result)


OUTCOME_COLUMNS = ("exit_time", "realised_return", "hit", "strategy_return", "resolved_at")


async def expired_outcomes(
    *, session: AsyncSession, before: datetime, limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` outcomes resolved before `before` that the live aggregates count, oldest
    first, as column -> value."""
    table = Outcome.__table__
    statement = (
        select(*(c for c in table.c if c.name != "aggregated"))
        .where(table.c.resolved_at < before, table.c.aggregated)
        .order_by(table.c.resolved_at)
        .limit(limit)
    )
    return [dict(row._mapping) for row in (await session.execute(statement)).all()]  # noqa: SLF001


async def expired_signals(
    *, session: AsyncSession, before: datetime, limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` signals emitted before `before`, oldest first, each with its outcome's
    columns (None without one); a signal whose outcome the aggregates do not count yet waits."""
    signals, outcomes = SignalRow.__table__, Outcome.__table__
    statement = (
        select(*signals.c, *(outcomes.c[name] for name in OUTCOME_COLUMNS))
        .outerjoin(outcomes, outcomes.c.signal_id == signals.c.signal_id)
        .where(
            signals.c.emitted_at < before,
            or_(outcomes.c.signal_id.is_(None), outcomes.c.aggregated),
        )
        .order_by(signals.c.emitted_at)
        .limit(limit)
    )
    return [dict(row._mapping) for row in (await session.execute(statement)).all()]  # noqa: SLF001


async def delete_outcomes(*, session: AsyncSession, signal_ids: Sequence[str]) -> int:
    deleted = 0
    for start in range(0, len(signal_ids), _CHUNK):
        chosen = signal_ids[start : start + _CHUNK]
        result = await session.execute(delete(Outcome).where(Outcome.signal_id.in_(chosen)))
        deleted += _rowcount(result)
    return deleted


async def delete_signals(*, session: AsyncSession, signal_ids: Sequence[str]) -> int:
    """These signals, with their outcomes."""
    await delete_outcomes(session=session, signal_ids=signal_ids)
    deleted = 0
    for start in range(0, len(signal_ids), _CHUNK):
        chosen = signal_ids[start : start + _CHUNK]
        result = await session.execute(delete(SignalRow).where(SignalRow.signal_id.in_(chosen)))
        deleted += _rowcount(result)
    return deleted
