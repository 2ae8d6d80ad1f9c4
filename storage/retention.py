"""Deletes for the retention policy (bot/pipeline/retention.py). Bars are never deleted here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.tables import LiveMetricSnapshot, Outcome, SignalRow


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
