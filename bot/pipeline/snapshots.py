"""Live-metric snapshots: one `live_metrics` row per model and window (7d, 30d, all).

Run by the consumers' outcome worker soon after new outcomes and by the scheduler's `live-metrics`
job; the figures come from `bot.core.live_metrics` (module `bot.core.live_scores`) over every
resolved signal.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import pandas as pd
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import utcnow
from bot.core import LIVE_COLUMNS, live_metrics
from storage.signals import insert_live_metrics, resolved_signals


async def snapshot_live_metrics(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    cost_bps: float,
    now: datetime | None = None,
) -> int:
    """Write one `live_metrics` row per (model, window: 7d, 30d, all); returns the rows."""
    computed_at = now or utcnow()
    async with session_factory() as session:
        rows = await resolved_signals(session=session)
    frame = pd.DataFrame(
        [[getattr(row, name) for name in LIVE_COLUMNS] for row in rows], columns=LIVE_COLUMNS
    )
    snapshots = await asyncio.to_thread(live_metrics, frame, now=computed_at, cost_bps=cost_bps)
    async with session_factory() as session, session.begin():
        return await insert_live_metrics(
            session=session, snapshots=snapshots, computed_at=computed_at
        )
