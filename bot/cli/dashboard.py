"""`itff dashboard` (serve the dashboard), `itff report snapshot` (its key charts as a PNG) and
`itff report daily` (the day's live-validation report)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.contracts import Settings, load_settings

if TYPE_CHECKING:
    from bot.pipeline import DailyReport


def register(app: typer.Typer) -> None:
    @app.command("dashboard")
    def dashboard(
        host: Annotated[
            str | None, typer.Option(help="Listen address (default ITFF_DASH_HOST)")
        ] = None,
        port: Annotated[
            int | None, typer.Option(help="Port (default ITFF_DASH_PORT, 5006)")
        ] = None,
    ) -> None:
        """Serve the dashboard: live vs backtest, signals, equity, models, runs, latency."""
        from bot.runtime import configure_logging
        from panel_app.server import password_of, serve

        overrides: dict[str, object] = {"dash_host": host, "dash_port": port}
        settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
        password_of(settings)  # refuse an unprotected public address before anything starts
        configure_logging(level=settings.log_level, json=settings.log_json, service="dashboard")
        typer.echo(f"dashboard at http://{settings.dash_host}:{settings.dash_port}/")
        serve(settings)

    report = typer.Typer(help="Reports for the daily routine.", no_args_is_help=True)

    @report.command("snapshot")
    def snapshot(
        day: Annotated[
            str | None, typer.Option(help="Date in the file name, YYYY-MM-DD (default: today UTC)")
        ] = None,
        window: Annotated[str, typer.Option(help="Live window: 7d, 30d or all")] = "all",
        output: Annotated[
            Path | None, typer.Option(help="PNG path (default: under ITFF_REPORT_DIR)")
        ] = None,
    ) -> None:
        """Render the overview table, equity and latency charts to a PNG."""
        from panel_app.snapshot import render_snapshot, snapshot_path

        settings = load_settings()
        target = output or snapshot_path(settings.report_dir, _day(day))
        render_snapshot(settings, target, window=window)
        typer.echo(f"snapshot written to {target}")

    @report.command("daily")
    def daily(
        day: Annotated[
            str | None, typer.Option(help="UTC day, YYYY-MM-DD (default: yesterday UTC)")
        ] = None,
        with_snapshot: Annotated[
            bool, typer.Option("--snapshot/--no-snapshot", help="Render the dashboard PNG too")
        ] = True,
    ) -> None:
        """Complete the day's audit log and write its summary (Markdown, JSON) and anomalies."""
        from bot.pipeline import previous_day

        settings = load_settings()
        chosen = _day(day) if day else previous_day()
        renderer = snapshot_renderer(settings) if with_snapshot else None
        done = asyncio.run(_daily(settings, chosen, renderer))
        typer.echo(f"daily report written to {done.markdown}")
        for anomaly in done.anomalies:
            typer.echo(f"anomaly: {anomaly}")

    app.add_typer(report, name="report")


def snapshot_renderer(settings: Settings) -> Callable[[Path], Path]:
    """The dashboard snapshot of the last 30 days, for the daily report (CLI and scheduler)."""
    from panel_app.snapshot import render_snapshot

    def render(target: Path) -> Path:
        return render_snapshot(settings, target, window="30d")

    return render


async def _daily(
    settings: Settings, day: date, renderer: Callable[[Path], Path] | None
) -> DailyReport:
    from bot.pipeline import daily_report
    from storage.db import create_engine, create_session_factory
    from storage.migrate import upgrade_async

    await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        return await daily_report(
            settings,
            session_factory=create_session_factory(engine),
            day=day,
            snapshot=renderer,
        )
    finally:
        await engine.dispose()


def _day(value: str | None) -> date:
    from bot.contracts import BadInput, utcnow

    if value is None:
        return utcnow().date()
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise BadInput(f"--day must be a date like 2026-01-31, got {value!r}") from exc
