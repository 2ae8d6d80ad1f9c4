"""The Alembic migrations on real SQLite and PostgreSQL: head matches the tables; 0003 (optional
volume, bar revisions) and 0004 (parked outbox entries) go up and down keeping the rows.
Alembic's environment runs its own event loop, so it runs in a thread, as
`storage.migrate.upgrade_async` runs it: `asyncio.run` here would drop pytest-asyncio's loop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text

from storage import migrate
from storage.db import sync_url
from storage.migrate import alembic_config, upgrade_async
from storage.tables import Base
from tests.support.postgres import both_stores

pytestmark = both_stores

ENTRY = text(
    "INSERT INTO outbox (alert_id, topic, key, payload, created_at, attempts, last_error) "
    "VALUES ('alert-0001', 'itff.alerts', :key, :payload, '2026-12-04 10:00:00.000000', 3, "
    "'MessageSizeTooLargeError()')"
).bindparams(key=b"SPX", payload=b"{}")


def _engine(url: str) -> Engine:
    return create_engine(sync_url(url))


def _outbox(engine: Engine) -> tuple[set[str], list[Any]]:
    columns = {column["name"] for column in inspect(engine).get_columns("outbox")}
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT alert_id, attempts, last_error FROM outbox")).all()
    return columns, [tuple(row) for row in rows]


async def test_head_matches_the_tables(blank_database_url: str) -> None:
    url = blank_database_url
    await upgrade_async(url)
    engine = _engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


async def test_0004_adds_parked_at_and_downgrades_keeping_the_entries(
    blank_database_url: str,
) -> None:
    url = blank_database_url
    await upgrade_async(url, "0003")
    engine = _engine(url)
    with engine.begin() as connection:
        connection.execute(ENTRY)
    entry = ("alert-0001", 3, "MessageSizeTooLargeError()")

    await upgrade_async(url, "0004")
    columns, rows = _outbox(engine)
    assert "parked_at" in columns
    assert rows == [entry]
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT parked_at FROM outbox")) is None  # still queued

    await asyncio.to_thread(command.downgrade, alembic_config(url), "0003")
    columns, rows = _outbox(engine)
    assert "parked_at" not in columns
    assert rows == [entry]

    await upgrade_async(url)
    assert "parked_at" in _outbox(engine)[0]
    engine.dispose()


BAR = (
    "INSERT INTO bars (symbol, interval, time, open, high, low, close, volume, source, updated_at) "
    "VALUES ('SPX', '1D', '2026-12-0{day} 00:00:00.000000', 1, 2, 0.5, 1.5, {volume}, 'test', "
    "'2026-12-04 10:00:00.000000')"
)


def _volumes(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.scalars(text("SELECT volume FROM bars ORDER BY time")))


async def test_0003_makes_volume_optional_and_downgrades_a_missing_one_to_zero(
    blank_database_url: str,
) -> None:
    url = blank_database_url
    await upgrade_async(url, "0002")
    engine = _engine(url)
    with engine.begin() as connection:
        connection.execute(text(BAR.format(day=1, volume=1000)))
    await upgrade_async(url, "0003")
    with engine.begin() as connection:
        connection.execute(text(BAR.format(day=2, volume="NULL")))
    assert _volumes(engine) == [1000.0, None]
    assert "bar_revisions" in inspect(engine).get_table_names()

    await asyncio.to_thread(command.downgrade, alembic_config(url), "0002")
    assert _volumes(engine) == [1000.0, 0.0]
    assert "bar_revisions" not in inspect(engine).get_table_names()
    volume = next(c for c in inspect(engine).get_columns("bars") if c["name"] == "volume")
    assert volume["nullable"] is False
    engine.dispose()


async def test_every_migration_goes_down_and_up_again(blank_database_url: str) -> None:
    """From head to base one step at a time, and back: each downgrade undoes its upgrade."""
    url = blank_database_url
    await upgrade_async(url)
    known = migrate.revisions()
    for revision in reversed(["base", *known[:-1]]):
        await asyncio.to_thread(migrate.downgrade, url, revision)
        assert migrate.current(url) == (None if revision == "base" else revision)
    engine = _engine(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    for revision in known:
        await upgrade_async(url, revision)
        assert migrate.current(url) == revision
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


V1_SIGNAL_ROW = (
    "INSERT INTO signals (signal_id, alert_id, symbol, interval, bar_time, model_key, "
    "model_version, target, prediction, probability, action, ood, latency_ms, emitted_at, horizon) "
    "VALUES ('s1', 'a1', 'SPX', '1D', '2026-12-01 00:00:00.000000', 'SPX-direction-logreg', 'v1', "
    "'direction', 0, 0.477, 'buy', 0, 3.2, '2026-12-01 00:00:01.000000', 1)"
)
SCORE_COLUMNS = {"score", "buy_threshold", "sell_threshold"}


async def test_0009_adds_the_signal_explanation_and_keeps_version_1_signals(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'itff.db'}"
    await upgrade_async(url, "0005")
    engine = _engine(url)
    with engine.begin() as connection:
        connection.execute(text(V1_SIGNAL_ROW))

    await upgrade_async(url, "0009")
    assert {c["name"] for c in inspect(engine).get_columns("signals")} >= SCORE_COLUMNS
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT probability, score, buy_threshold FROM signals")
        ).one()
    assert tuple(row) == (0.477, None, None)  # a version 1 signal: nothing made up

    await asyncio.to_thread(command.downgrade, alembic_config(url), "0005")
    assert not SCORE_COLUMNS & {c["name"] for c in inspect(engine).get_columns("signals")}
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM signals")) == 1
    engine.dispose()
