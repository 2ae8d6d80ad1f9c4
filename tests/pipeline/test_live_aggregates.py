"""Running live-metric aggregates on real SQLite: they survive a restart without a rescan, an
outcome for an older bar is counted right, and a snapshot equals the full recomputation."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Settings, Signal
from bot.core import LIVE_COLUMNS, live_metrics
from bot.pipeline import rebuild_live_metrics, snapshot_live_metrics
from bot.pipeline.snapshots import fold_new_outcomes
from storage.db import create_engine, create_session_factory
from storage.signals import (
    OutcomeRecord,
    insert_outcomes,
    insert_signals,
    latest_live_metrics,
    resolved_signals,
)
from storage.tables import LiveAggregate, Outcome
from tests.support.postgres import both_stores

pytestmark = both_stores

NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
KEYS = ("SPX-direction-logreg", "NDX-return-ridge")
COST = 2.0


async def store(
    session_factory: async_sessionmaker[AsyncSession], hours: list[int], *, seed: int
) -> None:
    """Resolved hourly signals of both models at `hours` before NOW."""
    rng = random.Random(seed)
    signals, outcomes = [], []
    for key in KEYS:
        target = key.split("-")[1]
        for hour in hours:
            bar_time = NOW - timedelta(hours=hour)
            action = rng.choice(["buy", "sell", "hold"])
            prediction = rng.random() if target == "direction" else rng.uniform(-0.01, 0.01)
            signal = Signal(
                alert_id=f"a{hour}", symbol=key.split("-")[0], interval="1h", bar_time=bar_time,
                model_key=key, model_version="v1", target=target, prediction=prediction,
                probability=None, action=action, ood=False, latency_ms=1.0,
            )  # fmt: skip
            realised = rng.uniform(-0.02, 0.02)
            position = {"buy": 1.0, "sell": -1.0}.get(action, 0.0)
            signals.append(signal)
            outcome = OutcomeRecord(
                signal_id=signal.signal_id, model_key=key, bar_time=bar_time,
                exit_time=bar_time + timedelta(hours=1), realised_return=realised,
                hit=None, strategy_return=position * rng.uniform(-0.02, 0.02),
            )  # fmt: skip
            outcomes.append(outcome)
    async with session_factory() as session, session.begin():
        await insert_signals(session=session, signals=signals, horizons=dict.fromkeys(KEYS, 1))
        await insert_outcomes(session=session, outcomes=outcomes)


async def full_recomputation(session_factory: async_sessionmaker[AsyncSession]) -> dict:
    async with session_factory() as session:
        rows = await resolved_signals(session=session)
    frame = [[getattr(row, name) for name in LIVE_COLUMNS] for row in rows]
    return live_metrics(frame, now=NOW, cost_bps=COST)


async def stored(session_factory: async_sessionmaker[AsyncSession]) -> dict:
    out = {}
    async with session_factory() as session:
        for window in ("7d", "30d", "all"):
            for key, figures in (await latest_live_metrics(session=session, window=window)).items():
                out[(key, window)] = figures
    return out


def assert_equal(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for key, figures in expected.items():
        for name, value in figures.items():
            if value is None or name in ("n", "signal_count"):
                assert got[key][name] == value, (key, name)
            else:
                assert got[key][name] == pytest.approx(value, rel=1e-9, abs=1e-12), (key, name)


async def test_aggregates_survive_a_restart_and_count_only_new_outcomes(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await store(session_factory, list(range(900, 10, -1)), seed=1)  # 37 days, oldest first
    await snapshot_live_metrics(session_factory=session_factory, cost_bps=COST, now=NOW)
    assert_equal(await stored(session_factory), await full_recomputation(session_factory))

    # a new process on the same file: the aggregates are read back, nothing is recounted
    engine = create_engine(settings.database_url)
    restarted = create_session_factory(engine)
    try:
        await store(restarted, [5, 4, 3], seed=2)
        assert await fold_new_outcomes(session_factory=restarted, cost_bps=COST) == 3 * len(KEYS)
        await snapshot_live_metrics(session_factory=restarted, cost_bps=COST, now=NOW)
        assert_equal(await stored(restarted), await full_recomputation(restarted))
    finally:
        await engine.dispose()


async def test_an_outcome_for_an_older_bar_and_the_rebuild_give_the_full_figures(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await store(session_factory, [100, 90, 50, 48, 20, 2], seed=3)
    await snapshot_live_metrics(session_factory=session_factory, cost_bps=COST, now=NOW)
    await store(session_factory, [49, 30, 1], seed=4)  # 49 and 30: inside counted days
    await snapshot_live_metrics(session_factory=session_factory, cost_bps=COST, now=NOW)
    expected = await full_recomputation(session_factory)
    assert_equal(await stored(session_factory), expected)

    counted = await rebuild_live_metrics(session_factory=session_factory, cost_bps=COST, now=NOW)
    assert counted == 9 * len(KEYS)
    assert_equal(await stored(session_factory), expected)
    async with session_factory() as session:
        pending = select(func.count()).select_from(Outcome).where(Outcome.aggregated.is_(False))
        assert (await session.execute(pending)).scalar_one() == 0
        days = select(func.count()).select_from(LiveAggregate)
        assert (await session.execute(days)).scalar_one() > len(KEYS)


async def test_another_cost_recounts_the_aggregates(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await store(session_factory, [30, 20, 10], seed=5)
    await snapshot_live_metrics(session_factory=session_factory, cost_bps=50.0, now=NOW)
    await snapshot_live_metrics(session_factory=session_factory, cost_bps=COST, now=NOW)
    assert_equal(await stored(session_factory), await full_recomputation(session_factory))
