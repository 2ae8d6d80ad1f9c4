"""`itff db upgrade | downgrade | current | copy`."""

from __future__ import annotations

import typer

from bot.contracts import load_settings


def register(app: typer.Typer) -> None:
    db = typer.Typer(
        help="Database schema: upgrade, downgrade, current; copy to another database.",
        no_args_is_help=True,
    )

    @db.command("upgrade")
    def upgrade(revision: str = typer.Argument("head", help="Alembic revision")) -> None:
        """Apply the Alembic migrations to ITFF_DATABASE_URL, forward to REVISION."""
        from storage import migrate

        settings = load_settings()
        migrate.upgrade(settings.database_url, revision)
        now = migrate.current(settings.database_url)
        typer.echo(f"database {migrate.masked(settings.database_url)} is at revision {now}")

    @db.command("downgrade")
    def downgrade(
        revision: str = typer.Argument(..., help="Alembic revision to go back to, or base"),
    ) -> None:
        """Take ITFF_DATABASE_URL back to REVISION (stop the services first; see
        deploy/rollback_checklist.md)."""
        from storage import migrate

        settings = load_settings()
        migrate.downgrade(settings.database_url, revision)
        now = migrate.current(settings.database_url) or "base"
        typer.echo(f"database {migrate.masked(settings.database_url)} is at revision {now}")

    @db.command("current")
    def current() -> None:
        """The revision ITFF_DATABASE_URL is at, and the newest one this version knows."""
        from storage import migrate

        settings = load_settings()
        now = migrate.current(settings.database_url) or "base (no migration applied)"
        typer.echo(
            f"database {migrate.masked(settings.database_url)} is at revision {now}; "
            f"this version's newest is {migrate.revisions()[-1]}"
        )

    @db.command("copy")
    def copy(
        to: str = typer.Option(..., "--to", help="URL of the empty target database"),
        source: str | None = typer.Option(
            None, "--from", help="URL of the source (default: ITFF_DATABASE_URL)"
        ),
    ) -> None:
        """Copy every row of ITFF_DATABASE_URL (or --from) into the empty database at --to, e.g.
        SQLite -> PostgreSQL; the target is migrated first. Stop the services while it runs."""
        import time

        from storage import copy as db_copy
        from storage import migrate

        settings = load_settings()
        origin = (
            load_settings(database_url=source).database_url if source else settings.database_url
        )
        target = load_settings(database_url=to).database_url
        typer.echo(f"copying {migrate.masked(origin)} -> {migrate.masked(target)}")
        began = time.monotonic()
        copied = db_copy.copy_database(
            origin, target, progress=lambda t: typer.echo(f"  {t.name:<18} {t.rows:>9} rows")
        )
        total = sum(table.rows for table in copied)
        typer.echo(
            f"copied {total} rows in {len(copied)} tables in {time.monotonic() - began:.1f} s; "
            f"point every process at it: ITFF_DATABASE_URL={migrate.masked(target)}"
        )

    app.add_typer(db, name="db")
