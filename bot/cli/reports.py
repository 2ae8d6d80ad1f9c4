"""`itff report daily|weekly|review|parity`: the live-validation reports (docs/live-validation.md),
the same code as the scheduler's `daily-report` and `weekly-report` jobs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.contracts import BadInput, Settings, load_settings, utcnow

if TYPE_CHECKING:
    from bot.pipeline import ChartRenderer, DailyReport, ParityReport, ReviewReport, WeeklyReport


def register_reports(report: typer.Typer) -> None:
    """Add the report commands to the `itff report` group."""

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

    @report.command("weekly")
    def weekly(
        week: Annotated[
            str | None, typer.Option(help="ISO week, e.g. 2026-W49 (default: the last complete)")
        ] = None,
        with_charts: Annotated[
            bool, typer.Option("--charts/--no-charts", help="Draw the PNG charts (Chromium)")
        ] = True,
        apply: Annotated[
            bool,
            typer.Option(
                "--apply",
                help="Publish the proposed thresholds as new versions and promote them",
            ),
        ] = False,
    ) -> None:
        """Per champion, live vs backtest over 7 and 30 days with the drift verdict (Markdown and
        PNG charts), and recalibrated thresholds where precision or recall drifts."""
        from bot.pipeline import previous_week

        settings = load_settings()
        charts = weekly_chart_renderer() if with_charts else None
        done, applied = asyncio.run(_weekly(settings, week or previous_week(), charts, apply=apply))
        _echo_weekly(done, applied)

    @report.command("review")
    def review(
        since: Annotated[str, typer.Option(help="First day of the period, YYYY-MM-DD")],
        until: Annotated[
            str | None, typer.Option(help="Day after the period (default: today UTC)")
        ] = None,
    ) -> None:
        """The 30-day review: per champion metrics, latency, incidents, verdicts, recommendation."""
        settings = load_settings()
        done = asyncio.run(_review(settings, _day(since), _day(until) if until else None))
        typer.echo(f"review written to {done.markdown}")
        for row in done.rows:
            typer.echo(f"{row['model_key']} {row['version']}: {row['recommendation']}")

    @report.command("parity")
    def parity(
        since: Annotated[
            str | None, typer.Option(help="Only signals of bars from this day, YYYY-MM-DD")
        ] = None,
    ) -> None:
        """Recompute every resolved live signal with the batch path; exit 1 on any mismatch."""
        settings = load_settings()
        start = datetime.combine(_day(since), time(), tzinfo=UTC) if since else None
        done = asyncio.run(_parity(settings, start))
        typer.echo(f"{len(done.mismatches)} parity mismatch(es) in {done.checked} resolved signals")
        for result in done.mismatches:
            signal = result.signal
            typer.echo(
                f"{signal.model_key} {signal.model_version} {signal.bar_time:%Y-%m-%d %H:%M} "
                f"{signal.signal_id}: {result.problem}"
            )
        if done.mismatches:
            raise typer.Exit(1)


def snapshot_renderer(settings: Settings) -> Callable[[Path], Path]:
    """The dashboard snapshot of the last 30 days, for the daily report (CLI and scheduler)."""
    from panel_app.snapshot import render_snapshot

    def render(target: Path) -> Path:
        return render_snapshot(settings, target, window="30d")

    return render


def _echo_weekly(done: WeeklyReport, applied: dict[str, str]) -> None:
    typer.echo(f"weekly report written to {done.markdown}")
    for row in done.rows:
        typer.echo(f"{row['model_key']} {row['window']}: {row['verdict']}")
    for item in done.proposals:
        typer.echo(
            f"{item.model_key}: proposed thresholds sell {item.proposed.sell:.4f} buy "
            f"{item.proposed.buy:.4f} (now {item.current.sell:.4f} / {item.current.buy:.4f})"
        )
    for key, version in applied.items():
        typer.echo(f"{key}: promoted {version} with the recalibrated thresholds")
    if done.proposals and not applied:
        typer.echo(f"apply them with `itff report weekly --week {done.week} --apply`")


def weekly_chart_renderer() -> ChartRenderer:
    """The weekly report's PNG charts (CLI and scheduler)."""
    from panel_app.weekly_charts import render_weekly_chart

    return render_weekly_chart


async def _daily(
    settings: Settings, day: date, renderer: Callable[[Path], Path] | None
) -> DailyReport:
    from bot.artifacts import registry_from_settings
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
            registry=registry_from_settings(settings),
        )
    finally:
        await engine.dispose()


async def _weekly(
    settings: Settings, week: str, charts: ChartRenderer | None, *, apply: bool
) -> tuple[WeeklyReport, dict[str, str]]:
    from bot.cli.pipeline import pipeline_context
    from bot.pipeline import ChampionSwitch, apply_proposals, bucket_mirror, weekly_report

    async with pipeline_context(settings) as ctx:
        report = await weekly_report(
            settings, session_factory=ctx.session_factory, week=week, registry=ctx.registry,
            charts=charts,
        )  # fmt: skip
        if not (apply and report.proposals):
            return report, {}
        mirror = bucket_mirror(settings, ctx.registry)
        switch = ChampionSwitch(ctx.session_factory, ctx.registry, ctx.events, mirror)
        versions = await apply_proposals(report, switch=switch)
    return report, {p.model_key: v for p, v in zip(report.proposals, versions, strict=True)}


async def _review(settings: Settings, since: date, until: date | None) -> ReviewReport:
    from bot.artifacts import registry_from_settings
    from bot.pipeline import review_report
    from storage.db import create_engine, create_session_factory
    from storage.migrate import upgrade_async

    await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        return await review_report(
            settings, session_factory=create_session_factory(engine), since=since, until=until,
            registry=registry_from_settings(settings),
        )  # fmt: skip
    finally:
        await engine.dispose()


async def _parity(settings: Settings, since: datetime | None) -> ParityReport:
    from bot.artifacts import registry_from_settings
    from bot.pipeline import parity_report
    from storage.db import create_engine, create_session_factory
    from storage.migrate import upgrade_async

    await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        return await parity_report(
            session_factory=create_session_factory(engine),
            registry=registry_from_settings(settings),
            since=since,
        )
    finally:
        await engine.dispose()


def _day(value: str | None) -> date:
    if value is None:
        return utcnow().date()
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise BadInput(f"a day must be a date like 2026-01-31, got {value!r}") from exc
