"""The consumer's SQLite write never checkpoints the WAL in its commits; `WalCheckpointer` does
it from its own thread, and the WAL is reused from its start once a checkpoint has copied it."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from storage.db import WalCheckpointer, create_sync_sqlite_engine, sqlite_file


def _wal_pages(path: Path) -> int:
    return (path.with_name(path.name + "-wal").stat().st_size - 32) // (4096 + 24)


def _write(engine: Engine, rows: int, start: int = 0) -> None:
    for i in range(start, start + rows):
        with engine.begin() as connection:  # one commit per row: many WAL frames
            connection.execute(text("INSERT INTO t VALUES (:i, :v)"), {"i": i, "v": "x" * 3000})


@pytest.mark.parametrize("checkpoints", ["in commits", "elsewhere"])
def test_commits_checkpoint_only_when_told_to(tmp_path: Path, checkpoints: str) -> None:
    path = tmp_path / "itff.db"
    engine = create_sync_sqlite_engine(f"sqlite+aiosqlite:///{path}", checkpoints=checkpoints)  # type: ignore[arg-type]
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (i INTEGER PRIMARY KEY, v TEXT)"))
        [autocheckpoint] = connection.execute(text("PRAGMA wal_autocheckpoint")).one()
    _write(engine, 1500)
    engine.dispose(close=False)
    pages = _wal_pages(path)
    if checkpoints == "elsewhere":
        assert autocheckpoint == 0
        assert pages > 1500  # every commit's pages are still in the WAL: nothing copied them
    else:
        assert autocheckpoint == 1000
        assert pages < 1200  # SQLite's automatic checkpoint ran in a commit and the WAL restarted


def test_the_checkpointer_copies_the_wal_and_writers_reuse_it(tmp_path: Path) -> None:
    path = tmp_path / "itff.db"
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_sync_sqlite_engine(url, checkpoints="elsewhere")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (i INTEGER PRIMARY KEY, v TEXT)"))
    checkpointer = WalCheckpointer(url, interval=0.05).start()
    try:
        for round_ in range(3):
            _write(engine, 400, start=round_ * 400)
            deadline = time.monotonic() + 10
            before = checkpointer.checkpoints
            while checkpointer.checkpoints < before + 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert checkpointer.checkpoints >= before + 2
        with sqlite3.connect(path) as reader:
            busy, frames, copied = reader.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            assert reader.execute("SELECT count(*) FROM t").fetchone() == (1200,)
        assert (busy, frames - copied) == (0, 0)  # everything committed was copied
        # 1,200 commits of two pages or more each (2,400+ frames), but the WAL restarted from
        # its start after the checkpoints: its file is as long as the longest stretch between two
        assert _wal_pages(path) < 1600
    finally:
        checkpointer.stop()
        engine.dispose()
    assert not checkpointer._thread.is_alive()


def test_a_checkpointer_needs_a_sqlite_file() -> None:
    with pytest.raises(ValueError, match="not a SQLite file"):
        WalCheckpointer("sqlite+aiosqlite:///:memory:")


@pytest.mark.parametrize(
    ("url", "file"),
    [
        ("sqlite+aiosqlite:///var/itff.db", "var/itff.db"),
        ("sqlite+aiosqlite:////abs/itff.db", "/abs/itff.db"),
        ("sqlite+aiosqlite:///:memory:", None),
        ("sqlite+aiosqlite://", None),
        ("postgresql+asyncpg://itff@db/itff", None),
    ],
)
def test_only_a_sqlite_file_gets_a_checkpointer(url: str, file: str | None) -> None:
    assert sqlite_file(url) == file
