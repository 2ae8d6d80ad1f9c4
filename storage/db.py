"""Async engine and session factory: SQLite (WAL, busy timeout) by default, any async URL.

Durability of a SQLite commit is chosen per engine (`synchronous`, a per-connection pragma):

- `FULL` for the receiver (`producers.app`) and `itff outbox`: the outbox is the only copy of an
  alert the receiver answered 202, so each commit is synced to disk before the answer; with
  `NORMAL` in WAL mode an OS crash or power loss can roll back the last commits.
- `NORMAL` (the default) for everything else. The consumer's rows are written after the alert is
  durable in Kafka and before its offsets are committed; what a crash could roll back is the
  database's copy of the last batches' signals (already acknowledged on the signals topic) and
  outcomes and bars (recomputed from signals and the data source). A sync per batch on the hot
  path buys nothing there that the alerts and signals topics do not already hold. The pipeline's
  and scheduler's writes are re-run by their next run; the dashboard only reads.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Literal

import sqlalchemy
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 10_000

Synchronous = Literal["NORMAL", "FULL"]


def _sqlite_pragmas(
    dbapi_connection: Any, _record: object, *, synchronous: Synchronous = "NORMAL"
) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def ensure_sqlite_dir(url: str) -> None:
    """Create the folder of a SQLite file so a fresh clone needs no manual step."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str, *, synchronous: Synchronous = "NORMAL", **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout, foreign keys and `synchronous` (see the
    module's docstring) on every connection, PostgreSQL (asyncpg) a `lock_timeout` as long."""
    ensure_sqlite_dir(url)
    if make_url(url).drivername == "postgresql+asyncpg":
        # the same bounded wait for a lock as SQLite's busy timeout: a write blocked longer
        # fails (a transient error the consumer retries with backoff) instead of hanging
        settings = {"lock_timeout": str(SQLITE_BUSY_TIMEOUT_MS)}
        connect_args = kwargs.pop("connect_args", {})
        server_settings = settings | connect_args.get("server_settings", {})
        kwargs["connect_args"] = connect_args | {"server_settings": server_settings}
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        pragmas = partial(_sqlite_pragmas, synchronous=synchronous)
        event.listen(engine.sync_engine, "connect", pragmas)
    return engine


def create_sync_sqlite_engine(url: str, **kwargs: Any) -> Engine:
    """A synchronous engine on the same SQLite file as `url`, with the same pragmas (the
    consumer's one-hop write in its worker thread)."""
    engine = sqlalchemy.create_engine(sync_url(url), **kwargs)
    if engine.dialect.name != "sqlite":
        raise ValueError(f"not a SQLite URL: {engine.url.render_as_string()}")
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def sync_url(url: str) -> str:
    """The synchronous twin of an async URL (Alembic, APScheduler's job store)."""
    parsed = make_url(url)
    driver = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}.get(
        parsed.get_backend_name(), parsed.get_backend_name()
    )
    return parsed.set(drivername=driver).render_as_string(hide_password=False)
