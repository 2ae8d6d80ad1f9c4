"""Bars in: the refresh step of a pipeline run and `itff backfill`.

The configured source (`csv:PATH` or `binance:URL`) is read through `bot.data.load_bars`; only bars
the `bars` table lacks are written (new bars after the last stored one and holes in between), so a
refresh is incremental and idempotent. A backfill rewrites every bar since a date.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import BadInput, ItffError, TransientError
from bot.data import LoadedBars
from storage.bars import bars_between, upsert_frame
from storage.refresh import insert_new_bars

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SessionFactory = async_sessionmaker[AsyncSession]


@dataclass(frozen=True, slots=True)
class RefreshResult:
    symbol: str
    loaded: int
    inserted: int
    stored: int
    last_bar: str | None
    anomalies: dict[str, Any] = field(default_factory=dict)
    bars: pd.DataFrame | None = None  # after a refresh: every stored bar of the symbol


def source_label(source: str) -> str:
    """What goes into `bars.source`: the scheme of the source (`csv`, `binance`)."""
    return source.split(":", 1)[0][:32] or "unknown"


async def load_source(source: str, symbol: str, interval: str) -> LoadedBars:
    """The source's validated bars of `symbol` and their anomaly report, read in a thread."""
    from bot.data import load_bars_report

    try:
        return await asyncio.to_thread(load_bars_report, source, symbol, interval=interval)
    except ItffError:
        raise
    except OSError as exc:
        raise TransientError(f"cannot read bars of {symbol} from {source}: {exc}") from exc


async def stored_bars(
    *, session_factory: SessionFactory, symbol: str, interval: str, since: datetime = EPOCH
) -> pd.DataFrame:
    async with session_factory() as session:
        return await bars_between(session=session, symbol=symbol, interval=interval, start=since)


async def refresh_symbol(
    *, session_factory: SessionFactory, source: str, symbol: str, interval: str
) -> RefreshResult:
    """Write the bars of `symbol` that the table lacks; returns counts and the anomaly report."""
    result = await load_source(source, symbol, interval)
    loaded = result.bars
    if loaded.empty:
        raise BadInput(f"{source} holds no bars for {symbol}; check ITFF_SYMBOLS and the source")
    stored = await stored_bars(session_factory=session_factory, symbol=symbol, interval=interval)
    missing = loaded.loc[~loaded.index.isin(stored.index)]
    async with session_factory() as session:
        inserted = await insert_new_bars(
            session=session,
            symbol=symbol,
            interval=interval,
            frame=missing,
            source=source_label(source),
        )
        await session.commit()
    return RefreshResult(
        symbol=symbol,
        loaded=len(loaded),
        inserted=inserted,
        stored=len(stored) + inserted,
        last_bar=loaded.index[-1].isoformat(),
        anomalies=result.report.to_dict(),
        bars=pd.concat([stored, missing]).sort_index() if len(missing) else stored,
    )


async def backfill(
    *,
    session_factory: SessionFactory,
    source: str,
    symbol: str,
    interval: str,
    since: datetime,
) -> RefreshResult:
    """Rewrite every bar of `symbol` at or after `since` from `source` (corrects history too)."""
    result = await load_source(source, symbol, interval)
    loaded = result.bars
    window = loaded.loc[loaded.index >= pd.Timestamp(since)]
    if window.empty:
        raise BadInput(
            f"{source} holds no bars of {symbol} since {since:%Y-%m-%d}; "
            f"its bars end at {loaded.index[-1]:%Y-%m-%d}"
            if not loaded.empty
            else f"{source} holds no bars for {symbol}"
        )
    async with session_factory() as session:
        written = await upsert_frame(
            session=session,
            symbol=symbol,
            interval=interval,
            frame=window,
            source=source_label(source),
        )
        await session.commit()
    return RefreshResult(
        symbol=symbol,
        loaded=len(window),
        inserted=written,
        stored=written,
        last_bar=window.index[-1].isoformat(),
        anomalies=result.report.to_dict(),
    )
