"""Retention archives expired signals with their outcomes as Parquet per month, then deletes
them: the archive reads back the same rows (also through `itff report archive`), and the live
metrics keep the figures of the deleted rows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.artifacts import ArtifactRegistry
from bot.contracts import Settings, utcnow
from bot.pipeline import RetentionPolicy, apply_retention, archive, snapshot_live_metrics
from storage.signals import resolved_signals
from storage.tables import Outcome, SignalRow
from tests.pipeline.test_live_aggregates import (
    COST,
    KEYS,
    NOW,
    assert_equal,
    full_recomputation,
    store,
    stored,
)
from tests.support.cli import run_itff
from tests.support.env import child_env
from tests.support.postgres import both_stores

pytestmark = both_stores

HOURS = list(range(24 * 45, 0, -3))  # 45 days of signals every 3 hours: two months of bars


async def _count(session_factory: async_sessionmaker[AsyncSession], table: object) -> int:
    async with session_factory() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


async def test_archive_round_trip_and_live_metrics_survive(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    half = len(HOURS) // 2
    await store(session_factory, HOURS[:half], seed=21)
    await snapshot_live_metrics(session_factory=session_factory, cost_bps=COST, now=NOW)
    await store(session_factory, HOURS[half:], seed=22)  # not counted yet: retention counts them
    expected = await full_recomputation(session_factory)
    async with session_factory() as session:
        rows = await resolved_signals(session=session)
    folder = tmp_path / "archive"
    policy = RetentionPolicy(
        signals_days=30, outcomes_days=3650, logs_days=30, keep_versions=2,
        archive_dir=folder, cost_bps=COST,
    )  # fmt: skip
    later = utcnow() + timedelta(days=31)  # every signal was emitted (stored) just now
    report = await apply_retention(
        policy=policy, session_factory=session_factory,
        registry=ArtifactRegistry(settings.artifact_dir), log_dir=settings.log_dir, now=later,
    )  # fmt: skip

    assert report.signals == len(rows) == len(HOURS) * len(KEYS)
    assert report.outcomes == 0  # they went with their signals
    assert report.archived  # one file per month of emission
    assert await _count(session_factory, SignalRow) == 0
    assert await _count(session_factory, Outcome) == 0

    back = archive.read(folder, archive.SIGNALS)
    assert len(back) == len(rows)
    original = pd.DataFrame(
        {
            "model_key": [r.model_key for r in rows],
            "bar_time": [r.bar_time for r in rows],
            "prediction": [r.prediction for r in rows],
            "strategy_return": [r.strategy_return for r in rows],
            "realised_return": [r.realised_return for r in rows],
        }
    ).sort_values(["model_key", "bar_time"], ignore_index=True)
    read = back[original.columns].sort_values(["model_key", "bar_time"], ignore_index=True)
    read["bar_time"] = pd.to_datetime(read["bar_time"], utc=True)
    original["bar_time"] = pd.to_datetime(original["bar_time"], utc=True)
    pd.testing.assert_frame_equal(read, original)

    # the deleted rows still count in the live metrics: the aggregates kept them
    await snapshot_live_metrics(session_factory=session_factory, cost_bps=COST, now=NOW)
    assert_equal(await stored(session_factory), expected)
    assert expected[(KEYS[0], "all")]["signal_count"] == len(HOURS)

    env = child_env(ITFF_ARCHIVE_DIR=str(folder))
    shown = run_itff(env, "report", "archive")
    assert shown.returncode == 0, shown.stderr
    for key in KEYS:
        assert key in shown.stdout
    missing = run_itff(env, "report", "archive", "--month", "1999-01")
    assert missing.returncode == 1
    assert "no archived signals for 1999-01" in missing.stderr
    assert "Traceback" not in missing.stderr
