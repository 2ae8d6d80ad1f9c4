"""`itff db copy --to URL`: every row of one database into another, e.g. SQLite -> PostgreSQL.

The target is migrated to head first and must hold no rows; the source must be at head too (the
tables are read through this version's mapping). Tables are copied parents first, in batches,
through the mapped types (so times stay UTC instants and JSON stays JSON), in one transaction on
the target: a failed copy leaves it empty. Integer keys are copied as they are; PostgreSQL's
sequences are then moved past them. APScheduler's job table is not copied: the scheduler adds
its jobs again at start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, Table

from bot.contracts import BadInput
from storage.db import ensure_sqlite_dir, sync_url
from storage.migrate import current, masked, revisions, upgrade
from storage.tables import Base

BATCH_ROWS = 5_000


@dataclass(frozen=True, slots=True)
class CopiedTable:
    name: str
    rows: int


def _engine(url: str) -> Engine:
    ensure_sqlite_dir(url)
    return sa.create_engine(sync_url(url))


def _check_source(source_url: str) -> None:
    head = revisions()[-1]
    at = current(source_url)
    if at != head:
        raise BadInput(
            f"the source {masked(source_url)} is at revision {at or 'base'}, not {head}: run "
            "`itff db upgrade` on it first (with this version of ITFF)"
        )


def _check_empty(connection: Connection, target_url: str) -> None:
    for table in Base.metadata.sorted_tables:
        if connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one():
            raise BadInput(
                f"the target {masked(target_url)} already has rows in {table.name}: copy into an "
                "empty database (create a new one, or drop and recreate it)"
            )


def _copy_table(source: Connection, target: Connection, table: Table) -> int:
    copied = 0
    result = source.execution_options(yield_per=BATCH_ROWS).execute(sa.select(table))
    for rows in result.mappings().partitions(BATCH_ROWS):
        target.execute(table.insert(), [dict(row) for row in rows])
        copied += len(rows)
    return copied


def _move_sequences(target: Connection, table: Table) -> None:
    """PostgreSQL: the next generated id follows the copied ones (SQLite needs nothing)."""
    for column in table.primary_key.columns:
        if column.autoincrement is True and isinstance(column.type, sa.Integer):
            sequence = sa.func.pg_get_serial_sequence(table.name, column.name)
            after = sa.select(sa.func.coalesce(sa.func.max(column), 0) + 1).scalar_subquery()
            not_called = sa.false()  # the next nextval() returns `after` itself
            target.execute(sa.select(sa.func.setval(sequence, after, not_called)))


def copy_database(
    source_url: str,
    target_url: str,
    *,
    progress: Callable[[CopiedTable], None] | None = None,
) -> list[CopiedTable]:
    """Copy every table of `source_url` into the empty `target_url` (both async URLs)."""
    if sync_url(source_url) == sync_url(target_url):
        raise BadInput("the source and the target are the same database")
    _check_source(source_url)
    upgrade(target_url)
    source, target = _engine(source_url), _engine(target_url)
    copied: list[CopiedTable] = []
    try:
        with source.connect() as reading, target.begin() as writing:
            _check_empty(writing, target_url)
            for table in Base.metadata.sorted_tables:
                done = CopiedTable(table.name, _copy_table(reading, writing, table))
                if writing.dialect.name == "postgresql":
                    _move_sequences(writing, table)
                copied.append(done)
                if progress is not None:
                    progress(done)
    finally:
        source.dispose()
        target.dispose()
    return copied
