"""The pipeline's fast path into `bars`: a plain bulk INSERT of bars known to be missing.

`storage.bars.upsert_frame` handles conflicts (the consumers' and the backfill's case); a refresh
only ever writes times that the table lacks, so an executemany INSERT does, about 6x cheaper.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.contracts import utcnow
from storage.bars import BAR_FIELDS
from storage.tables import Bar


async def insert_new_bars(
    *, session: AsyncSession, symbol: str, interval: str, frame: pd.DataFrame, source: str
) -> int:
    """Insert the rows of a bars frame (none may exist yet); returns how many."""
    if frame.empty:
        return 0
    now = utcnow()
    times = pd.DatetimeIndex(frame.index).to_pydatetime()
    values = frame[list(BAR_FIELDS)].to_numpy(dtype=float).tolist()
    rows = [
        {
            "symbol": symbol,
            "interval": interval,
            "time": time,
            **dict(zip(BAR_FIELDS, bar, strict=True)),
            "source": source,
            "updated_at": now,
        }
        for time, bar in zip(times, values, strict=True)
    ]
    await session.execute(insert(Bar), rows)
    return len(rows)
