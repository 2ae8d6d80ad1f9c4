"""`itff dashboard` (serve the dashboard), `itff report snapshot` (its key charts as a PNG)
and `itff report archive` (what retention archived); the live-validation reports are in
`bot.cli.reports`."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.reports import register_reports
from bot.contracts import load_settings, service_settings


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
        given = {k: v for k, v in overrides.items() if v is not None}
        settings = service_settings("dashboard", **given)
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

    @report.command("archive")
    def archived(
        month: Annotated[
            str | None, typer.Option(help="One archived month, YYYY-MM (default: all of them)")
        ] = None,
        kind: Annotated[
            str, typer.Option(help="signals (with their outcomes) or outcomes")
        ] = "signals",
        output: Annotated[
            Path | None, typer.Option(help="Also write the archived rows to this CSV file")
        ] = None,
    ) -> None:
        """Per model, what the retention job archived under ITFF_ARCHIVE_DIR: signals, resolved
        ones, hit rate, compounded strategy return, first and last bar."""
        from bot.contracts import BadInput
        from bot.pipeline import archive

        settings = load_settings()
        if month is not None and month not in archive.months(settings.archive_dir, kind):
            known = ", ".join(archive.months(settings.archive_dir, kind)) or "none"
            raise BadInput(
                f"no archived {kind} for {month} in {settings.archive_dir} (months: {known})"
            )
        frame = archive.read(settings.archive_dir, kind, month=month)
        if frame.empty:
            typer.echo(f"nothing archived under {settings.archive_dir / kind} yet")
            return
        typer.echo(archive.summary(frame).to_string(index=False))
        if output is not None:
            frame.to_csv(output, index=False)
            typer.echo(f"{len(frame)} archived rows written to {output}")

    register_reports(report)
    app.add_typer(report, name="report")


def _day(value: str | None) -> date:
    from bot.contracts import BadInput, utcnow

    if value is None:
        return utcnow().date()
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise BadInput(f"--day must be a date like 2026-01-31, got {value!r}") from exc
