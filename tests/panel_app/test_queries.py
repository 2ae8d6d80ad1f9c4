"""The dashboard's queries and derived frames, against a SQLite file with the real tables."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import BadInput, Settings, Signal, TransientError, utcnow
from panel_app.compare import live_vs_backtest
from panel_app.data import SignalFilter, load
from panel_app.queries import SIGNAL_LIMIT, DashboardQueries
from panel_app.series import bucket_for, compound, equity_pair, latency_percentiles
from panel_app.views.overview import _colour
from panel_app.views.theme import DRIFT_COLOR, OK_COLOR
from storage import signals as signal_repo
from tests.support.dashboard import (
    A_KEY,
    B_KEY,
    BAR0,
    N_EQUITY,
    N_OUTCOMES,
    N_SIGNALS,
    Seeded,
    backtest_return,
    live_return,
    seed_dashboard,
)
from tests.support.postgres import both_stores

pytestmark = both_stores


@pytest.fixture
async def seeded(session_factory: async_sessionmaker[AsyncSession]) -> Seeded:
    return await seed_dashboard(session_factory)


@pytest.fixture
async def queries(settings: Settings, seeded: Seeded) -> AsyncIterator[DashboardQueries]:
    reader = DashboardQueries.from_url(settings.database_url, ttl_seconds=3600)
    yield reader
    reader.close()


async def test_champions_are_the_promoted_versions(queries: DashboardQueries) -> None:
    champions = queries.champions()
    assert sorted(zip(champions["model_key"], champions["version"], strict=True)) == [
        (B_KEY, "v1"),
        (A_KEY, "v2"),
    ]
    statuses = queries.model_versions().set_index(["model_key", "version"])["status"]
    assert statuses[(A_KEY, "v1")] == "retired"
    assert statuses[("SPX-direction-hgb", "v1")] == "challenger"


async def test_live_metrics_take_the_latest_snapshot_of_the_window(
    queries: DashboardQueries,
) -> None:
    everything = queries.live_metrics("all").set_index("model_key")["metrics"]
    assert everything[A_KEY]["accuracy"] == pytest.approx(0.4825)
    assert everything[B_KEY]["accuracy"] == pytest.approx(0.55)
    week = queries.live_metrics("7d")
    assert week["model_key"].tolist() == [A_KEY]
    assert week["metrics"].iloc[0] == {"accuracy": 0.4}


async def test_overview_flags_drift_beyond_the_margin(queries: DashboardQueries) -> None:
    overview = live_vs_backtest(queries.champions(), queries.live_metrics("all"), 0.05)
    rows = overview.set_index("model_key")
    assert rows.loc[A_KEY, "accuracy_live"] == pytest.approx(0.4825)
    assert rows.loc[A_KEY, "accuracy_backtest"] == pytest.approx(0.5625)
    assert rows.loc[A_KEY, "signals_live"] == 24
    assert rows.loc[A_KEY, "signals_backtest"] == 1200
    assert bool(rows.loc[A_KEY, "drifting"])
    assert rows.loc[A_KEY, "drift"] == (
        "directional accuracy -8.0 pp; precision -8.0 pp; recall -6.0 pp"
    )
    assert not bool(rows.loc[B_KEY, "drifting"])
    assert rows.loc[B_KEY, "drift"] == "within margin"
    assert set(rows["comparison"]) == {"stored backtest"}  # no backtest on the live period given
    assert rows.loc[B_KEY, "mae_live"] == pytest.approx(0.0091)
    assert pd.isna(rows.loc[A_KEY, "mae_live"])


async def test_a_live_snapshot_of_fewer_than_20_signals_is_not_judged(
    queries: DashboardQueries,
) -> None:
    """The weekly verdict's and the drift gauge's rule: a gap over a few signals is noise."""
    live = queries.live_metrics("all")
    live["metrics"] = [{**metrics, "signal_count": 19.0} for metrics in live["metrics"]]
    rows = live_vs_backtest(queries.champions(), live, 0.05).set_index("model_key")
    assert not rows["drifting"].any()
    assert rows.loc[A_KEY, "drift"] == "not judged: 19 resolved signals, fewer than 20"
    assert rows.loc[A_KEY, "accuracy_live"] == pytest.approx(0.4825)  # still shown
    assert set(rows["comparison"]) == {"stored backtest"}
    assert set(_colour(rows)["drift"]) == {""}  # neither red nor the green of a judged model
    judged = live_vs_backtest(queries.champions(), queries.live_metrics("all"), 0.05)
    styles = _colour(judged.set_index("model_key"))["drift"]
    assert styles[A_KEY] == f"color: {DRIFT_COLOR}"
    assert styles[B_KEY] == f"color: {OK_COLOR}"


async def test_a_wider_margin_clears_the_flag_and_no_snapshot_is_said(
    queries: DashboardQueries,
) -> None:
    overview = live_vs_backtest(queries.champions(), queries.live_metrics("30d"), 0.10)
    assert overview["drift"].tolist() == ["no live snapshot yet"] * 2
    wide = live_vs_backtest(queries.champions(), queries.live_metrics("all"), 0.10)
    assert not wide["drifting"].any()


async def test_signals_newest_first_and_filtered(queries: DashboardQueries) -> None:
    every = queries.signals()
    assert len(every) == 2 * N_SIGNALS
    assert every["emitted_at"].is_monotonic_decreasing
    spx = queries.signals(symbols=("SPX",))
    assert set(spx["model_key"]) == {A_KEY}
    sells = queries.signals(actions=("sell",))
    assert set(sells["action"]) == {"sell"}
    assert len(sells) == N_SIGNALS // 2
    ridge_holds = queries.signals(model_keys=(B_KEY,), actions=("hold",))
    assert len(ridge_holds) == N_SIGNALS // 2
    assert queries.signals(symbols=("SPX",), model_keys=(B_KEY,)).empty
    assert len(queries.signals(limit=5)) == 5
    assert len(queries.signals(limit=10 * SIGNAL_LIMIT)) == 2 * N_SIGNALS


async def test_signal_choices_list_what_has_signals(queries: DashboardQueries) -> None:
    assert queries.signal_choices() == {"symbols": ["NDX", "SPX"], "model_keys": [B_KEY, A_KEY]}


async def test_events_and_runs_newest_first(queries: DashboardQueries) -> None:
    events = queries.model_events()
    assert events["version"].tolist()[0] == "v2"
    assert events["previous_version"].tolist()[0] == "v1"
    assert len(events) == 3
    runs = queries.pipeline_runs()
    assert runs["run_id"].tolist() == ["run-2", "run-1"]
    assert runs["status"].tolist() == ["failed", "succeeded"]
    assert runs["duration_s"].iloc[1] == pytest.approx(42.5)
    assert runs["log_path"].iloc[1] == "logs/pipeline/run-1.log"


async def test_equity_follows_live_returns_over_the_same_backtest_period(
    queries: DashboardQueries,
) -> None:
    backtest = queries.backtest_equity(A_KEY, "v2")
    assert len(backtest) == N_EQUITY
    assert backtest["time"].is_monotonic_increasing
    pair = equity_pair(A_KEY, queries.live_returns("all"), backtest)
    expected_live = np.cumprod([1 + live_return(A_KEY, i) for i in range(N_OUTCOMES)])
    np.testing.assert_allclose(pair.live["equity"], expected_live)
    expected_backtest = np.cumprod([1 + backtest_return(i) for i in range(N_OUTCOMES)])
    np.testing.assert_allclose(pair.backtest["equity"], expected_backtest)
    assert pair.backtest["time"].iloc[0] == BAR0
    assert pair.backtest_note == "same period: 2018-10-01 to 2018-10-15"
    assert pair.live["drawdown"].min() == pytest.approx(-0.004)
    assert (pair.live["drawdown"] <= 0).all()


async def test_equity_without_overlap_shows_the_whole_backtest(queries: DashboardQueries) -> None:
    backtest = queries.backtest_equity(A_KEY, "v2")
    later = pd.DataFrame(
        {
            "model_key": [A_KEY] * 2,
            "bar_time": [BAR0 + timedelta(days=400), BAR0 + timedelta(days=401)],
            "strategy_return": [0.01, 0.02],
        }
    )
    pair = equity_pair(A_KEY, later, backtest)
    assert len(pair.backtest) == N_EQUITY
    assert "does not cover" in pair.backtest_note
    assert equity_pair(B_KEY, later, backtest).backtest_note == "no live outcomes yet"


async def test_latency_percentiles_per_bucket(queries: DashboardQueries, seeded: Seeded) -> None:
    latencies = queries.latencies("7d")
    assert len(latencies) == 2 * N_SIGNALS
    assert latencies["emitted_at"].is_monotonic_increasing
    buckets = latency_percentiles(latencies)
    assert buckets["n"].sum() == 2 * N_SIGNALS
    everything = seeded.a_latencies + seeded.b_latencies
    assert buckets["p99"].max() <= max(everything)
    assert buckets["p50"].min() >= min(everything)
    assert (buckets["p50"] <= buckets["p95"]).all()
    assert (buckets["p95"] <= buckets["p99"]).all()
    assert latency_percentiles(latencies.iloc[0:0]).empty


def test_bucket_width_keeps_charts_readable() -> None:
    assert bucket_for(timedelta(milliseconds=900)) == "10ms"
    assert bucket_for(timedelta(seconds=5)) == "100ms"
    assert bucket_for(timedelta(minutes=1)) == "1s"
    assert bucket_for(timedelta(minutes=20)) == "10s"
    assert bucket_for(timedelta(days=3)) == "1h"
    assert bucket_for(timedelta(days=3650)) == "7D"


def test_compound_starts_from_one() -> None:
    frame = compound(
        pd.Series(pd.date_range("2020", periods=3, tz="UTC")), pd.Series([0.1, -0.5, 0.0])
    )
    np.testing.assert_allclose(frame["equity"], [1.1, 0.55, 0.55])
    np.testing.assert_allclose(frame["drawdown"], [0.0, -0.5, -0.5])


async def test_results_are_cached_until_they_expire(
    settings: Settings,
    queries: DashboardQueries,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    before = len(queries.signals())
    extra = Signal(
        alert_id="SPX-new",
        symbol="SPX",
        interval="1D",
        bar_time=BAR0 + timedelta(days=100),
        model_key=A_KEY,
        model_version="v2",
        target="direction",
        prediction=0.7,
        probability=0.7,
        action="buy",
        ood=False,
        latency_ms=5.0,
        emitted_at=utcnow(),
    )
    async with session_factory() as session:
        await signal_repo.insert_signals(session=session, signals=[extra], horizons={A_KEY: 1})
        await session.commit()
    assert len(queries.signals()) == before
    fresh = DashboardQueries.from_url(settings.database_url, ttl_seconds=3600)
    try:
        assert len(fresh.signals()) == before + 1
        assert fresh.signals()["alert_id"].iloc[0] == "SPX-new"
    finally:
        fresh.close()


async def test_the_reader_cannot_write(queries: DashboardQueries) -> None:
    # SQLite: "attempt to write a readonly database"; PostgreSQL: "read-only transaction"
    with (
        pytest.raises(DBAPIError, match=r"readonly|read-only"),
        queries.engine.begin() as connection,
    ):
        connection.execute(text("DELETE FROM signals"))
    assert len(queries.signals()) == 2 * N_SIGNALS


async def test_load_gathers_every_view(queries: DashboardQueries) -> None:
    data = load(
        queries, window="all", drift_margin=0.05, signal_filter=SignalFilter(symbols=("NDX",))
    )
    assert data.overview["model_key"].tolist() == [B_KEY, A_KEY]
    assert [pair.model_key for pair in data.equity] == [B_KEY, A_KEY]
    assert set(data.signals["symbol"]) == {"NDX"}
    assert len(data.versions) == 4
    assert len(data.runs) == 2


async def test_unknown_window_is_bad_input(queries: DashboardQueries) -> None:
    with pytest.raises(BadInput, match="7d, 30d, all"):
        queries.live_metrics("1y")


async def test_an_empty_database_gives_empty_frames(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    reader = DashboardQueries.from_url(settings.database_url)
    try:
        data = load(reader, window="all", drift_margin=0.05)
    finally:
        reader.close()
    assert data.overview.empty
    assert data.equity == []
    assert data.signals.empty
    assert data.signal_choices == {"symbols": [], "model_keys": []}
    assert data.latencies.empty


def test_a_database_without_tables_says_to_upgrade(blank_database_url: str) -> None:
    reader = DashboardQueries.from_url(blank_database_url)
    try:
        with pytest.raises(TransientError, match="itff db upgrade"):
            reader.signals()
    finally:
        reader.close()
