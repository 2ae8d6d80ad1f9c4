"""`itff pipeline run|runs`, `itff scheduler`, `itff backfill`, `itff rollback`."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from bot.contracts import BadInput, Settings, load_settings, service_settings
from bot.contracts.production import Service

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from bot.artifacts import ArtifactRegistry
    from bot.kafka import ModelEventPublisher


@dataclass(frozen=True, slots=True)
class _Context:
    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    registry: ArtifactRegistry
    events: ModelEventPublisher


@asynccontextmanager
async def pipeline_context(settings: Settings) -> AsyncIterator[_Context]:
    """A migrated database, the artifact registry and a model-event publisher."""
    from bot.artifacts import registry_from_settings
    from bot.kafka import ModelEventPublisher
    from storage.db import create_engine, create_session_factory
    from storage.migrate import upgrade_async

    await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        async with ModelEventPublisher(settings) as events:
            yield _Context(
                settings, create_session_factory(engine), registry_from_settings(settings), events
            )
    finally:
        await engine.dispose()


def _settings(
    symbols: str | None = None, source: str | None = None, *, service: Service | None = None
) -> Settings:
    from bot.runtime import configure_logging

    overrides: dict[str, object] = {}
    if symbols:
        overrides["symbols"] = symbols
    if source:
        overrides["data_source"] = source
    settings = service_settings(service, **overrides) if service else load_settings(**overrides)
    configure_logging(level=settings.log_level, json=settings.log_json, service="pipeline")
    return settings


def _parse_day(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError as exc:
        raise BadInput(f"--since {value!r} is not a date; use YYYY-MM-DD") from exc


async def _run_once(settings: Settings, holdout_bars: int = 0) -> dict[str, object]:
    from bot.pipeline import run_pipeline

    async with pipeline_context(settings) as ctx:
        summary = await run_pipeline(
            settings,
            session_factory=ctx.session_factory,
            registry=ctx.registry,
            events=ctx.events,
            trigger="manual",
            holdout_bars=holdout_bars,
        )
    return {
        "run_id": summary.run_id,
        "status": summary.status,
        "duration_s": summary.duration_s,
        "counts": summary.counts,
        "decisions": summary.decisions,
        "log": summary.log_path,
        "error": summary.error,
    }


async def _serve_scheduler(settings: Settings) -> None:
    from bot.cli.reports import snapshot_renderer, weekly_chart_renderer
    from bot.pipeline import ItffScheduler
    from bot.runtime import serve_metrics

    serve_metrics(settings.scheduler_metrics_port, settings.metrics_host)
    async with pipeline_context(settings) as ctx:
        scheduler = ItffScheduler(
            settings,
            session_factory=ctx.session_factory,
            registry=ctx.registry,
            events=ctx.events,
            snapshot=snapshot_renderer(settings),
            charts=weekly_chart_renderer(),
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await scheduler.start()
        try:
            await stop.wait()
        finally:
            await scheduler.shutdown()


async def _backfill(settings: Settings, symbol: str, since: datetime) -> dict[str, object]:
    from bot.pipeline import backfill
    from storage.db import create_engine, create_session_factory
    from storage.migrate import upgrade_async

    await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        result = await backfill(
            session_factory=create_session_factory(engine),
            source=settings.data_source,
            symbol=symbol.upper(),
            interval=settings.interval,
            since=since,
        )
    finally:
        await engine.dispose()
    return {"symbol": result.symbol, "written": result.inserted, "last_bar": result.last_bar,
            "anomalies": result.anomalies}  # fmt: skip


async def _rollback(settings: Settings, key: str, to: str | None) -> str:
    from bot.pipeline import ChampionSwitch, bucket_mirror

    async with pipeline_context(settings) as ctx:
        mirror = bucket_mirror(settings, ctx.registry)
        switch = ChampionSwitch(ctx.session_factory, ctx.registry, ctx.events, mirror)
        return await switch.rollback(key=key, to=to)


async def _recent_runs(settings: Settings, limit: int) -> list[dict[str, object]]:
    from storage import runs as run_repo
    from storage.db import create_engine, create_session_factory
    from storage.migrate import upgrade_async

    await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session:
            rows = await run_repo.list_runs(session=session, limit=limit)
    finally:
        await engine.dispose()
    return [
        {"run_id": r.run_id, "trigger": r.trigger, "status": r.status,
         "started_at": r.started_at.isoformat(), "duration_s": r.duration_s,
         "counts": r.counts, "error": r.error}
        for r in rows
    ]  # fmt: skip


def _echo(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def register(app: typer.Typer) -> None:
    pipeline = typer.Typer(help="The daily pipeline: refresh, train, publish, promote.")

    @pipeline.command("run")
    def run(
        symbols: str | None = typer.Option(None, help="comma list; default ITFF_SYMBOLS"),
        source: str | None = typer.Option(None, help="csv:PATH or binance:URL"),
        holdout_bars: int = typer.Option(
            0,
            min=0,
            help="train without each symbol's newest N stored bars (replay them out of sample)",
        ),
    ) -> None:
        """Run the pipeline once now and print the run record; exit 1 when it failed."""
        summary = asyncio.run(_run_once(_settings(symbols, source), holdout_bars))
        _echo(summary)
        if summary["status"] != "succeeded":
            raise typer.Exit(1)

    @pipeline.command("runs")
    def runs(limit: int = typer.Option(10, min=1, max=1000)) -> None:
        """The most recent pipeline runs, newest first."""
        _echo(asyncio.run(_recent_runs(_settings(), limit)))

    app.add_typer(pipeline, name="pipeline")

    @app.command("scheduler")
    def scheduler() -> None:
        """Run the scheduled jobs (pipeline, verification, retention, live metrics) till stopped."""
        asyncio.run(_serve_scheduler(_settings(service="scheduler")))

    @app.command("backfill")
    def backfill_command(
        symbol: str = typer.Option(..., help="the symbol to load, e.g. SPX"),
        since: str = typer.Option(..., help="first day to (re)write, YYYY-MM-DD"),
        source: str | None = typer.Option(None, help="csv:PATH or binance:URL"),
    ) -> None:
        """(Re)write the bars of SYMBOL since a date from the source into the bars table."""
        settings = _settings(source=source)
        _echo(asyncio.run(_backfill(settings, symbol, _parse_day(since))))

    @app.command("rollback")
    def rollback(
        key: str = typer.Argument(..., help="model key, e.g. SPX-direction-logreg"),
        to: str | None = typer.Option(None, "--to", help="version; default the previous one"),
    ) -> None:
        """Switch KEY's champion back and tell the running consumers (ModelEvent rolled_back)."""
        version = asyncio.run(_rollback(_settings(), key, to))
        typer.echo(f"{key}: champion is now {version}")
