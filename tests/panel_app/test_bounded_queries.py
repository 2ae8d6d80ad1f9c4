"""The dashboard's views stay bounded as history grows: the equity view reads one row per model
and day from the running aggregates, the signals view pages, the filter choices seek."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Settings
from bot.pipeline.snapshots import fold_new_outcomes
from panel_app.queries import DashboardQueries
from storage.signals import resolved_signals
from tests.pipeline.test_live_aggregates import KEYS, NOW, store
from tests.support.postgres import both_stores

pytestmark = both_stores

HOURS = list(range(24 * 40, 0, -1))  # 40 days of hourly signals of each model, oldest first


@pytest.fixture
async def queries(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[DashboardQueries]:
    await store(session_factory, HOURS, seed=11)
    await fold_new_outcomes(session_factory=session_factory, cost_bps=1.0)
    reader = DashboardQueries.from_url(settings.database_url, ttl_seconds=3600)
    yield reader
    reader.close()


async def test_live_returns_are_one_row_per_day_compounding_to_the_same_equity(
    queries: DashboardQueries, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    daily = queries.live_returns("all")
    async with session_factory() as session:
        rows = await resolved_signals(session=session)
    for key in KEYS:
        mine = daily[daily["model_key"] == key]
        raw = [row for row in rows if row.model_key == key]
        days = {row.bar_time.date() for row in raw}
        assert len(mine) == len(days)  # one point per day, not per signal
        assert mine["bar_time"].is_monotonic_increasing
        assert mine["bar_time"].iloc[-1] == raw[-1].bar_time  # the last bar closes the curve
        expected = math.prod(1 + row.strategy_return for row in raw)
        assert math.prod(1 + r for r in mine["strategy_return"]) == pytest.approx(expected)
    assert daily["bar_time"].min() < NOW - timedelta(days=30)
    # the 30-day window is real time: the stored bars (ending NOW, in the past) are all older
    assert queries.live_returns("7d").empty


async def test_the_signals_view_pages_newest_first(queries: DashboardQueries) -> None:
    first, second = queries.signals(limit=50), queries.signals(limit=50, page=1)
    assert len(first) == len(second) == 50
    assert not set(first["signal_id"]) & set(second["signal_id"])
    assert first["emitted_at"].min() >= second["emitted_at"].max()
    total = len(HOURS) * len(KEYS)
    assert len(queries.signals(limit=50, page=total // 50)) == total % 50
    assert queries.signals(limit=50, page=total // 50 + 1).empty


async def test_the_filter_choices_list_every_symbol_and_model(queries: DashboardQueries) -> None:
    assert queries.signal_choices() == {"symbols": ["NDX", "SPX"], "model_keys": sorted(KEYS)}
