"""The Overview and Equity tabs' backtest on the live period: the batch path over exactly each
champion's live bars, read from real SQLite and a real artifact registry."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Settings, utcnow
from bot.core import SAME_PERIOD, STORED
from panel_app.data import load
from panel_app.live_period import LivePeriod
from panel_app.queries import DashboardQueries
from panel_app.views.equity import final_return
from storage.signals import insert_live_metrics
from storage.tables import Outcome, SignalRow
from tests.pipeline.test_weekly_same_period import HONEST, LIVE_BARS, SKEWED, serve_live_period
from tests.support.consumer import registry

LIVE_SNAPSHOT = {"accuracy": 0.5, "signal_count": float(LIVE_BARS)}  # 45 pp below STORED's


async def store_live_snapshot(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """The live-metrics job's snapshot of both champions (window all)."""
    snapshots = {(key, "all"): LIVE_SNAPSHOT for key in (HONEST, SKEWED)}
    async with session_factory() as session, session.begin():
        await insert_live_metrics(session=session, snapshots=snapshots, computed_at=utcnow())


async def test_overview_and_equity_show_the_batch_path_over_the_live_bars(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await serve_live_period(settings, session_factory)
    await store_live_snapshot(session_factory)
    queries = DashboardQueries.from_url(settings.database_url)
    live_period = LivePeriod(registry(settings), cost_bps=settings.cost_bps)
    try:
        data = load(queries, window="all", drift_margin=0.05, live_period=live_period)
        again = load(queries, window="all", drift_margin=0.05, live_period=live_period)
    finally:
        queries.close()

    rows = {row["model_key"]: row for row in data.same_period.table.to_dict("records")}
    honest, skewed = rows[HONEST], rows[SKEWED]
    assert (honest["bars"], honest["comparison"]) == (LIVE_BARS, SAME_PERIOD)
    assert honest["verdict"] == "within margin"
    for name in ("accuracy", "precision", "recall"):
        assert honest[f"{name}_live"] == honest[f"{name}_batch"]
    # live holds on out-of-distribution inputs, the batch path has no such rule: bar by bar, the
    # returns agree everywhere else
    async with session_factory() as session:
        found = await session.execute(
            select(SignalRow.ood, Outcome.strategy_return)
            .join(Outcome, Outcome.signal_id == SignalRow.signal_id)
            .where(SignalRow.model_key == HONEST)
            .order_by(SignalRow.bar_time)
        )
        ood, live_returns = map(np.array, zip(*found.all(), strict=True))
    batch_returns = data.same_period.returns[HONEST]["strategy_return"].to_numpy(dtype=float)
    assert len(batch_returns) == len(live_returns) == LIVE_BARS
    assert np.allclose(batch_returns[~ood], live_returns[~ood].astype(float))
    assert (live_returns[ood] == 0).all()
    assert skewed["verdict"].startswith("drift: directional accuracy")
    assert skewed["comparison"] == SAME_PERIOD
    pairs = {pair.model_key: pair for pair in data.equity}
    expected = np.cumprod(1.0 + batch_returns)
    assert np.allclose(pairs[HONEST].live_period["equity"].to_numpy(dtype=float), expected)
    assert "backtest on the live period" in final_return(pairs[HONEST])
    assert again.same_period.table.equals(data.same_period.table)  # cached, same answer
    # the Overview's Drift column judges on the live period too (the weekly verdict's rule): the
    # honest champion is within margin there although 45 pp off its stored backtest
    overview = data.overview.set_index("model_key")
    assert overview.loc[HONEST, "comparison"] == f"{SAME_PERIOD} ({LIVE_BARS} bars)"
    assert overview.loc[HONEST, "drift"] == "within margin"
    assert not overview.loc[HONEST, "drifting"]
    assert overview.loc[SKEWED, "comparison"] == f"{SAME_PERIOD} ({LIVE_BARS} bars)"
    assert overview.loc[SKEWED, "drift"].startswith("directional accuracy")
    assert overview.loc[SKEWED, "drifting"]
    assert overview.loc[HONEST, "accuracy_live"] == LIVE_SNAPSHOT["accuracy"]  # figures unchanged


async def test_without_a_registry_the_comparison_says_it_is_unavailable(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await serve_live_period(settings, session_factory)
    await store_live_snapshot(session_factory)
    queries = DashboardQueries.from_url(settings.database_url)
    try:
        data = load(
            queries, window="all", drift_margin=0.05,
            live_period=LivePeriod(None, cost_bps=settings.cost_bps),
        )  # fmt: skip
    finally:
        queries.close()
    table = data.same_period.table
    assert set(table["comparison"]) == {"stored backtest"}
    assert all(v.startswith("unavailable: no artifact registry") for v in table["verdict"])
    assert all(pair.live_period.empty for pair in data.equity)
    # the Drift column falls back to the stored backtest, and says so
    overview = data.overview.set_index("model_key")
    assert set(overview["comparison"]) == {STORED}
    assert overview.loc[HONEST, "drift"] == "directional accuracy -45.0 pp"
    assert overview["drifting"].all()
