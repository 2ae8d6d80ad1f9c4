"""`itff notifier` (the service) and `itff notifications list|retry` (its delivery records)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from bot.contracts import load_settings
from bot.runtime import configure_logging

Destinations = Annotated[
    list[str] | None,
    typer.Option("--destination", help="webhook-N, telegram or discord (repeatable)"),
]
Parked = Annotated[bool, typer.Option("--parked", help="only the parked ones")]
SignalIds = Annotated[list[str] | None, typer.Option("--signal", help="only this signal id")]
ERROR_CHARS = 80


def register(app: typer.Typer) -> None:
    @app.command("notifier")
    def notifier(
        metrics_port: int | None = typer.Option(
            None, help="Prometheus port (default ITFF_NOTIFIER_METRICS_PORT; 0 turns it off)"
        ),
    ) -> None:
        """Deliver signals to the configured webhooks, Telegram and Discord (group
        itff-notifier); stops cleanly on SIGTERM or Ctrl-C."""
        from consumers.notifier import run

        settings = load_settings()
        configure_logging(level=settings.log_level, json=settings.log_json, service="notifier")
        asyncio.run(run(settings, metrics_port=metrics_port))

    notifications = typer.Typer(
        help="The notifier's deliveries: list them, send parked ones again.",
        no_args_is_help=True,
    )

    @notifications.command("list")
    def list_command(
        destination: Destinations = None,
        parked: Parked = False,
        limit: int = typer.Option(100, min=1, help="at most this many, oldest first"),
    ) -> None:
        """Deliveries, oldest first: destination, signal id, status, attempts, last error."""
        from consumers.notifier.parked import notifications as read

        rows = asyncio.run(
            read(
                load_settings(),
                parked_only=parked,
                destination_names=destination or (),
                limit=limit,
            )
        )
        typer.echo(f"{len(rows)} notifications")
        for row in rows:
            error = (row.last_error or "")[:ERROR_CHARS]
            typer.echo(
                f"{row.updated_at:%Y-%m-%d %H:%M:%S}  {row.destination:<10} {row.signal_id:<34} "
                f"{row.status:<9} {row.attempts:>3}  {error}"
            )

    @notifications.command("retry")
    def retry(destination: Destinations = None, signal: SignalIds = None) -> None:
        """Send the parked notifications (of these destinations, these signals) again."""
        from consumers.notifier.parked import retry_parked

        results = asyncio.run(
            retry_parked(
                load_settings(), destination_names=destination or (), signal_ids=signal or ()
            )
        )
        delivered = sum(r.status == "delivered" for r in results)
        typer.echo(f"retried {len(results)} parked notifications: {delivered} delivered")
        for result in results:
            if result.status == "parked":
                typer.echo(f"  {result.destination}: still parked: {result.error}")
        if delivered < len(results):
            raise typer.Exit(1)

    app.add_typer(notifications, name="notifications")
