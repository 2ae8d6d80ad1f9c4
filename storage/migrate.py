"""`itff db upgrade | downgrade | current`: Alembic migrations, programmatically (no alembic.ini).

Every migration has a downgrade (tests/storage/test_migrations.py walks them all down and up).
`upgrade` only moves forward and `downgrade` only back: asking either for the other direction is
a `BadInput` naming the current revision and the command to use, never a silent no-op.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, make_url

from bot.contracts import BadInput
from storage.db import ensure_sqlite_dir, sync_url

MIGRATIONS = Path(__file__).parent / "migrations"
BASE = "base"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url)
    return config


def revisions() -> list[str]:
    """Every revision, oldest first."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def current(database_url: str) -> str | None:
    """The database's revision (None: no migration applied yet)."""
    ensure_sqlite_dir(database_url)
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def masked(database_url: str) -> str:
    """The URL with its password hidden, for output."""
    return make_url(database_url).render_as_string(hide_password=True)


def _position(revision: str | None) -> int:
    """Where `revision` stands (-1 before the first migration); `BadInput` when unknown."""
    known = revisions()
    if revision in (None, BASE):
        return -1
    if revision == "head":
        return len(known) - 1
    if revision not in known:
        raise BadInput(f"unknown revision {revision!r}; known: {', '.join(known)} (or head, base)")
    return known.index(revision)


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at `database_url` (an async URL) forward to `revision`."""
    target = _position(revision)
    if revision != "head":
        now = current(database_url)
        if target < _position(now):
            raise BadInput(
                f"the database is at revision {now}, newer than {revision}: upgrade only moves "
                f"forward; use `itff db downgrade {revision}`"
            )
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    """Take the database back to `revision` (`base`: before the first migration)."""
    target = _position(revision)
    now = current(database_url)
    if target > _position(now):
        raise BadInput(
            f"the database is at revision {now}, older than {revision}: downgrade only moves "
            f"back; use `itff db upgrade {revision}`"
        )
    command.downgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    """`upgrade` from inside a running event loop (Alembic's env starts its own)."""
    await asyncio.to_thread(upgrade, database_url, revision)
