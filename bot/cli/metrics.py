"""`itff metrics rebuild`: recount the running live-metric aggregates from the stored outcomes."""

from __future__ import annotations

import asyncio
import time

import typer

from bot.contracts import TransientError, load_settings


async def _rebuild(database_url: str, cost_bps: float) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from bot.pipeline import rebuild_live_metrics
    from storage.db import create_engine, create_session_factory
    from storage.migrate import masked

    engine = create_engine(database_url)
    try:
        factory = create_session_factory(engine)
        return await rebuild_live_metrics(session_factory=factory, cost_bps=cost_bps)
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise TransientError(
            f"cannot rebuild the live metrics in {masked(database_url)} ({cause}); "
            "run `itff db upgrade` if its tables are missing or out of date"
        ) from exc
    finally:
        await engine.dispose()


def register(app: typer.Typer) -> None:
    metrics = typer.Typer(
        help="Live metrics: rebuild their running aggregates.", no_args_is_help=True
    )

    @metrics.command("rebuild")
    def rebuild() -> None:
        """Recount every stored outcome into the live-metric aggregates (days whose signals were
        archived keep their figures) and write a fresh live-metrics snapshot."""
        settings = load_settings()
        started = time.perf_counter()
        counted = asyncio.run(_rebuild(settings.database_url, settings.cost_bps))
        typer.echo(
            f"live metrics rebuilt from {counted} stored outcomes "
            f"in {time.perf_counter() - started:.1f} s"
        )

    app.add_typer(metrics, name="metrics")
