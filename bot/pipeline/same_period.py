"""Backtest on the live period, measured from the store: each champion's resolved live signals and
the batch path over exactly their bars (`bot.core.live_period`), costs included, per window. The
weekly report and the drift gauge both judge drift on it (`bot.core.drift_rule.compared`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import ItffError, Settings
from bot.core import LIVE_COLUMNS, batch_live_rows, live_metrics
from bot.pipeline.refresh import stored_bars
from bot.runtime import get_logger
from storage.signals import resolved_signals

if TYPE_CHECKING:
    from bot.artifacts import ArtifactRegistry
    from storage.tables import ModelVersion

log = get_logger(__name__)
COLUMNS = (*LIVE_COLUMNS, "model_version")
Windows = tuple[tuple[str, timedelta], ...]
SameMetrics = dict[tuple[str, str], dict[str, dict[str, float | None]]]


async def resolved_frame(
    session_factory: async_sessionmaker[AsyncSession], *, since: datetime, until: datetime
) -> pd.DataFrame:
    """The resolved signals whose bar is in [since, until) (`COLUMNS`)."""
    async with session_factory() as session:
        resolved = await resolved_signals(session=session, since=since)
    inside = [row for row in resolved if row.bar_time < until]
    return pd.DataFrame(
        [[getattr(row, name) for name in COLUMNS] for row in inside], columns=COLUMNS
    )


async def same_period_metrics(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    registry: ArtifactRegistry,
    *,
    champions: Sequence[ModelVersion],
    frame: pd.DataFrame,
    now: datetime,
    windows: Windows,
) -> SameMetrics:
    """Per (champion, window): the metrics of its version's live signals and of the batch path
    over exactly their bars (`bot.core.live_period`), costs included."""
    live_parts, batch_parts = [], []
    for champion in champions:
        mine = frame[
            (frame["model_key"] == champion.model_key)
            & (frame["model_version"] == champion.version)
        ]
        if mine.empty:
            continue
        bars = await stored_bars(
            session_factory=session_factory, symbol=champion.symbol,
            interval=str(mine["interval"].iloc[0]),
        )  # fmt: skip
        try:
            batch = await asyncio.to_thread(_batch_rows, registry, champion, mine, bars)
        except (ItffError, ValueError, LookupError, OSError) as exc:
            log.warning("same_period_failed", model_key=champion.model_key, error=str(exc))
            continue
        times = set(pd.to_datetime(batch["bar_time"], utc=True))
        live_parts.append(mine[pd.to_datetime(mine["bar_time"], utc=True).isin(times)])
        batch_parts.append(batch)
    measured: dict[str, dict[tuple[str, str], dict[str, float | None]]] = {}
    for name, parts in (("live", live_parts), ("batch", batch_parts)):
        measured[name] = {}
        for part in parts:  # one champion each: its own (model_key, window) entries
            measured[name] |= await asyncio.to_thread(
                live_metrics, part.loc[:, list(LIVE_COLUMNS)], now=now,
                cost_bps=settings.cost_bps, windows=windows,
            )  # fmt: skip
    return {
        key: {"live": measured["live"].get(key, {}), "batch": value}
        for key, value in measured["batch"].items()
    }


def _batch_rows(
    registry: ArtifactRegistry, champion: ModelVersion, live: pd.DataFrame, bars: pd.DataFrame
) -> pd.DataFrame:
    bundle = registry.load(champion.model_key, champion.version)
    return batch_live_rows(live.loc[:, list(LIVE_COLUMNS)], bars, bundle)
