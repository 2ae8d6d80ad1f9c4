"""`itff metrics rebuild` on real SQLite, through the real command line."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from storage.db import create_engine, create_session_factory
from tests.pipeline.test_live_aggregates import store
from tests.support.cli import run_itff
from tests.support.env import child_env


async def test_rebuild_recounts_the_stored_outcomes_and_writes_a_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "itff.db"
    env = child_env(ITFF_DATABASE_URL=f"sqlite+aiosqlite:///{path}")
    assert run_itff(env, "db", "upgrade").returncode == 0
    engine = create_engine(env["ITFF_DATABASE_URL"])
    await store(create_session_factory(engine), [30, 20, 10], seed=7)
    await engine.dispose()

    done = run_itff(env, "metrics", "rebuild")
    assert done.returncode == 0, done.stderr
    assert "live metrics rebuilt from 6 stored outcomes" in done.stdout
    with sqlite3.connect(path) as db:
        windows = db.execute("SELECT model_key, window FROM live_metrics ORDER BY 1").fetchall()
        pending = db.execute("SELECT count(*) FROM outcomes WHERE NOT aggregated").fetchone()
    # the signals are from March 2026: older than both recent windows
    assert windows == [("NDX-return-ridge", "all"), ("SPX-direction-logreg", "all")]
    assert pending == (0,)


def test_rebuild_on_a_database_without_tables_says_what_to_do(tmp_path: Path) -> None:
    env = child_env(ITFF_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    done = run_itff(env, "metrics", "rebuild")
    assert done.returncode == 1
    assert "run `itff db upgrade`" in done.stderr
    assert "Traceback" not in done.stderr
