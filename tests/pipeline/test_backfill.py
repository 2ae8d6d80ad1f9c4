"""The incremental refresh adds new bars and fills holes only; a backfill rewrites history."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import delete, func, select

from bot.contracts import BadInput
from bot.pipeline import backfill, refresh_symbol, stored_bars
from storage.tables import Bar
from tests.support.pipeline import write_sample_slice
from tests.support.postgres import both_stores

pytestmark = both_stores


async def _count(session_factory) -> int:
    async with session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(Bar)) or 0)


async def test_refresh_is_incremental_and_fills_holes(session_factory, tmp_path) -> None:
    folder = write_sample_slice(tmp_path / "bars", {"SPX": "SPX"}, bars=300)
    source = f"csv:{folder}"
    first = await refresh_symbol(
        session_factory=session_factory, source=source, symbol="SPX", interval="1D"
    )
    assert (first.loaded, first.inserted, first.stored) == (300, 300, 300)
    assert "rows_in" in first.anomalies

    stored = await stored_bars(session_factory=session_factory, symbol="SPX", interval="1D")
    holes = stored.index[[10, 11, 200]]
    async with session_factory() as session:
        await session.execute(delete(Bar).where(Bar.time.in_([t.to_pydatetime() for t in holes])))
        await session.commit()
    again = await refresh_symbol(
        session_factory=session_factory, source=source, symbol="SPX", interval="1D"
    )
    assert again.inserted == 3
    assert await _count(session_factory) == 300
    unchanged = await refresh_symbol(
        session_factory=session_factory, source=source, symbol="SPX", interval="1D"
    )
    assert unchanged.inserted == 0


async def test_backfill_rewrites_bars_since_a_day(session_factory, tmp_path) -> None:
    folder = write_sample_slice(tmp_path / "bars", {"SPX": "SPX"}, bars=300)
    source = f"csv:{folder}"
    await refresh_symbol(
        session_factory=session_factory, source=source, symbol="SPX", interval="1D"
    )
    csv = folder / "SPX_1d.csv"
    frame = pd.read_csv(csv)
    since = datetime.fromisoformat(frame["time"].iloc[250]).astimezone(UTC)
    corrected = frame["time"] >= frame["time"].iloc[250]
    for column in ("open", "high", "low", "close"):
        frame.loc[corrected, column] = frame.loc[corrected, column] * 2
    frame.to_csv(csv, index=False)

    result = await backfill(
        session_factory=session_factory, source=source, symbol="SPX", interval="1D", since=since
    )

    assert result.inserted == 50
    stored = await stored_bars(session_factory=session_factory, symbol="SPX", interval="1D")
    assert len(stored) == 300
    assert stored["close"].iloc[-1] == pytest.approx(frame["close"].iloc[-1])
    assert stored["close"].iloc[0] == pytest.approx(frame["close"].iloc[0])  # before: untouched
    with pytest.raises(BadInput, match="no bars of SPX since"):
        await backfill(
            session_factory=session_factory, source=source, symbol="SPX", interval="1D",
            since=datetime(2100, 1, 1, tzinfo=UTC),
        )  # fmt: skip
