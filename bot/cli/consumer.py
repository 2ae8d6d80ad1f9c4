"""`itff consumer`: the inference consumer (alerts -> signals), model hot reload, outcomes."""

from __future__ import annotations

import asyncio

import typer

from bot.contracts import service_settings
from bot.runtime import configure_logging, single_native_thread


def register(app: typer.Typer) -> None:
    @app.command("consumer")
    def consumer(
        metrics_port: int | None = typer.Option(
            None, help="Prometheus port (default ITFF_CONSUMER_METRICS_PORT; 0 turns it off)"
        ),
    ) -> None:
        """Consume itff.alerts in group itff-inference; stops cleanly on SIGTERM or Ctrl-C."""
        single_native_thread()
        from consumers.runner import run

        settings = service_settings("consumer")
        configure_logging(level=settings.log_level, json=settings.log_json, service="consumer")
        asyncio.run(run(settings, metrics_port=metrics_port))
