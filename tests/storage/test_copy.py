"""`itff db copy --to URL`: a filled SQLite database lands row for row in an empty PostgreSQL one,
which then takes new rows; a target with rows, or a source behind head, is refused clearly."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Settings, utcnow
from bot.data.files import read_bar_file
from bot.pipeline.snapshots import fold_new_outcomes
from storage import outbox
from storage import pipeline_lock as lock_repo
from storage.bars import upsert_frame
from storage.db import sync_url
from storage.tables import BarRevision, Base, ModelEventRow, Notification
from tests.conftest import SAMPLE_DIR
from tests.support.cli import run_itff
from tests.support.dashboard import seed_dashboard
from tests.support.env import child_env

pytestmark = pytest.mark.postgres

Sessions = async_sessionmaker[AsyncSession]


async def _fill(sessions: Sessions) -> None:
    """Every table gets rows: the dashboard's figures, the sample bars, and one of each other."""
    await seed_dashboard(sessions)
    await fold_new_outcomes(session_factory=sessions, cost_bps=1.0)  # the running aggregates
    now = utcnow()
    async with sessions() as session, session.begin():
        for symbol in ("SPX", "NDX"):
            frame = read_bar_file(SAMPLE_DIR / f"{symbol}_1d.csv").set_index("time")
            await upsert_frame(
                session=session, symbol=symbol, interval="1D", frame=frame, source="csv"
            )
        session.add(
            BarRevision(
                symbol="SPX", interval="1D", time=now - timedelta(days=1), open=1, high=2, low=0.5,
                close=1.5, volume=None, source="csv", revised_by="tradingview",
            )
        )  # fmt: skip
        session.add(ModelEventRow(model_key="SPX-direction-logreg", version="v2", event="promoted"))
        session.add(
            Notification(
                destination="webhook-1", signal_id="s1", status="parked", attempts=3,
                last_error="HTTP 503", signal='{"signal_id": "s1"}',
            )
        )  # fmt: skip
        for n in range(3):
            await outbox.add_outbox_entry(
                session=session, alert_id=f"alert-{n}", topic="itff.alerts", key=b"SPX",
                payload=b'{"close": 1.5}',
            )  # fmt: skip
        await lock_repo.acquire(
            session=session, run_id="r1", holder="host-a", now=now, ttl=timedelta(minutes=5)
        )


def _rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            return {
                table.name: sorted(
                    (tuple(row) for row in connection.execute(sa.select(table))), key=repr
                )
                for table in Base.metadata.sorted_tables
            }
    finally:
        engine.dispose()


async def test_copy_to_postgres_keeps_every_row_and_the_target_takes_new_ones(
    settings: Settings, session_factory: Sessions, postgres_blank_url: str
) -> None:
    await _fill(session_factory)
    env = child_env(settings)

    done = run_itff(env, "db", "copy", "--to", postgres_blank_url, timeout=300)

    assert done.returncode == 0, done.stderr
    source, target = _rows(settings.database_url), _rows(postgres_blank_url)
    assert all(source[name] for name in source), {k: len(v) for k, v in source.items()}
    assert target == source
    total = sum(len(rows) for rows in source.values())
    assert f"copied {total} rows in {len(source)} tables" in done.stdout
    assert f"  bars               {len(source['bars']):>9} rows" in done.stdout
    assert "password" not in done.stdout
    # the copied ids do not collide with the next generated ones
    engine = sa.create_engine(sync_url(postgres_blank_url))
    try:
        with engine.begin() as connection:
            new_id = connection.execute(
                sa.text(
                    "INSERT INTO outbox (alert_id, topic, key, payload, created_at, attempts) "
                    "VALUES ('alert-new', 't', 'k', 'p', now(), 0) RETURNING id"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    assert new_id == max(row[0] for row in source["outbox"]) + 1

    again = run_itff(env, "db", "copy", "--to", postgres_blank_url, timeout=300)
    assert again.returncode == 1
    assert "already has rows in" in again.stderr
    assert "copy into an empty database" in again.stderr
    assert "Traceback" not in again.stderr


def test_a_source_behind_head_is_refused(
    settings: Settings, tmp_path: Path, postgres_blank_url: str
) -> None:
    env = child_env(settings, ITFF_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'new.db'}")
    done = run_itff(env, "db", "copy", "--to", postgres_blank_url)
    assert done.returncode == 1
    assert "is at revision base" in done.stderr
    assert "itff db upgrade" in done.stderr
    assert "Traceback" not in done.stderr
