"""`itff db upgrade`."""

from __future__ import annotations

import typer

from bot.contracts import load_settings


def register(app: typer.Typer) -> None:
    db = typer.Typer(help="Database schema.", no_args_is_help=True)

    @db.command("upgrade")
    def upgrade(revision: str = typer.Argument("head", help="Alembic revision")) -> None:
        """Apply the Alembic migrations to ITFF_DATABASE_URL."""
        from storage.migrate import upgrade as run_upgrade

        settings = load_settings()
        run_upgrade(settings.database_url, revision)
        typer.echo(f"database at {settings.database_url} is at revision {revision}")

    app.add_typer(db, name="db")
