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

WAL checkpoints: SQLite copies the WAL into the database (and syncs it) inside whichever commit
crosses 1,000 WAL pages. The consumer's batch write opts out (`checkpoints="elsewhere"`) and its
process runs a `WalCheckpointer` thread instead (a passive checkpoint every second), so no batch
pays for a checkpoint; every other connection keeps SQLite's automatic checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any, Literal

import sqlalchemy
import structlog
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 10_000
log = structlog.get_logger(__name__)  # storage sits below bot.runtime: structlog itself

Synchronous = Literal["NORMAL", "FULL"]
Checkpoints = Literal["in commits", "elsewhere"]


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


def create_sync_sqlite_engine(
    url: str, *, checkpoints: Checkpoints = "in commits", **kwargs: Any
) -> Engine:
    """A synchronous engine on the same SQLite file as `url`, with the same pragmas (the
    consumer's one-hop write in its worker thread).

    `checkpoints="elsewhere"`: its commits never checkpoint the WAL (`wal_autocheckpoint=0`);
    run a `WalCheckpointer` beside it. SQLite's automatic checkpoint otherwise runs inside
    whichever commit crosses 1,000 WAL pages: it copies them into the database and syncs it
    there, on the consumer's hot path (a few ms in one batch's write every few seconds)."""
    engine = sqlalchemy.create_engine(sync_url(url), **kwargs)
    if engine.dialect.name != "sqlite":
        raise ValueError(f"not a SQLite URL: {engine.url.render_as_string()}")
    event.listen(engine, "connect", _sqlite_pragmas)
    if checkpoints == "elsewhere":
        event.listen(engine, "connect", _no_autocheckpoint)
    return engine


def sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL; None for another backend or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return str(parsed.database)


def _no_autocheckpoint(dbapi_connection: Any, _record: object) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


class WalCheckpointer:
    """Checkpoints a SQLite database's WAL from its own thread every `interval` seconds
    (`PRAGMA wal_checkpoint(PASSIVE)`: copies what no reader still needs, never waits for or
    blocks a writer), for writers whose commits do not (`checkpoints="elsewhere"`).

    Besides keeping the copy and its sync off the writer's commits, a page written many times
    between two checkpoints is copied once: per 10-alert batch of 30 signals (about 86 WAL
    pages), 0.94 ms of CPU with a checkpoint every 10,000 pages against 1.14 ms with SQLite's
    1,000 (`bench/e2e.py --inprocess`). The other connections keep their automatic checkpoint,
    so the WAL stays bounded even if this thread stalled."""

    def __init__(self, url: str, *, interval: float = 1.0) -> None:
        path = sqlite_file(url)
        if path is None:
            raise ValueError(f"not a SQLite file: {url}")
        self.path, self.interval = path, interval
        self.checkpoints = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="itff-wal-checkpoint", daemon=True)

    def start(self) -> WalCheckpointer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def checkpoint(self, connection: sqlite3.Connection) -> tuple[int, int, int]:
        """(busy, WAL frames, frames checkpointed) of one passive checkpoint."""
        busy, frames, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.checkpoints += 1
        return int(busy), int(frames), int(copied)

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, check_same_thread=False)
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.checkpoint(connection)
                except sqlite3.Error as exc:  # a locked or busy file: the next tick tries again
                    log.warning("WAL checkpoint failed; retried", error=str(exc))
        finally:
            connection.close()


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@contextlib.asynccontextmanager
async def write_transaction(
    session_factory: async_sessionmaker[AsyncSession], *, lock: asyncio.Lock | None = None
) -> AsyncIterator[AsyncSession]:
    """A session in a transaction that writes, entered under `lock` when given: the writers of
    one process taking turns (the consumer's batches and its outcome worker)."""
    async with lock or contextlib.nullcontext(), session_factory() as session, session.begin():
        yield session


def sync_url(url: str) -> str:
    """The synchronous twin of an async URL (Alembic, APScheduler's job store)."""
    parsed = make_url(url)
    driver = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}.get(
        parsed.get_backend_name(), parsed.get_backend_name()
    )
    return parsed.set(drivername=driver).render_as_string(hide_password=False)
