"""`itff db upgrade | downgrade | current`."""

from __future__ import annotations

import typer

from bot.contracts import load_settings


def register(app: typer.Typer) -> None:
    db = typer.Typer(help="Database schema: upgrade, downgrade, current.", no_args_is_help=True)

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

    app.add_typer(db, name="db")
