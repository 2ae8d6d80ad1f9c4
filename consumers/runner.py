"""The consumer process: broker, inference and reload subscribers, outcome worker, metrics.

`run(settings)` returns after SIGTERM or SIGINT, once the subscribers stopped (the batch in flight
finishes or is redelivered), the background worker was cancelled and awaited, and the database
engine disposed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from faststream.kafka import KafkaBroker
from sqlalchemy.orm import sessionmaker

from bot.contracts import Settings
from bot.runtime import freeze_startup_objects, get_logger, serve_metrics
from bot.serving import pull_champions
from consumers.app import add_inference, add_reload, create_broker, inference_group
from consumers.contract import document
from consumers.outcomes import OutcomeWorker
from consumers.reload import Reloader
from consumers.served_models import PredictorModels
from consumers.service import InferenceService
from storage.db import (
    Checkpoints,
    WalCheckpointer,
    create_engine,
    create_session_factory,
    create_sync_sqlite_engine,
    sqlite_file,
)
from storage.migrate import upgrade_async

log = get_logger(__name__)


@dataclass(slots=True)
class Consumer:
    """A running consumer, for tests and benchmarks that drive it in-process."""

    broker: KafkaBroker
    service: InferenceService
    reloader: Reloader
    models: PredictorModels


@asynccontextmanager
async def running_consumer(
    settings: Settings, *, group_id: str | None = None, outcomes: bool = True
) -> AsyncIterator[Consumer]:
    """Start the consumer app; on exit stop it cleanly (subscribers, worker, engine)."""
    await upgrade_async(settings.database_url)  # a no-op when `itff up` already migrated
    engine = create_engine(settings.database_url)
    session_factory = create_session_factory(engine)
    # SQLite: each batch's write runs in the inference thread on a synchronous connection, one
    # thread hop per batch instead of one per aiosqlite call
    sqlite = engine.dialect.name == "sqlite"
    # ... whose commits leave the WAL checkpoints to a thread of their own (a file database)
    checkpointer = (
        WalCheckpointer(settings.database_url)
        if sqlite and sqlite_file(settings.database_url)
        else None
    )
    checkpoints: Checkpoints = "in commits" if checkpointer is None else "elsewhere"
    sync_engine = (
        create_sync_sqlite_engine(settings.database_url, checkpoints=checkpoints)
        if sqlite
        else None
    )
    models = PredictorModels.from_settings(settings)
    broker = create_broker(settings)
    # one writer at a time in this process: a batch waits for at most one short transaction of
    # the outcome worker, not for SQLite's busy handler to find the write lock free
    write_lock = asyncio.Lock()
    service = add_inference(
        broker,
        settings,
        session_factory=session_factory,
        models=models,
        group_id=group_id,
        sync_sessions=sessionmaker(sync_engine, expire_on_commit=False) if sync_engine else None,
        write_lock=write_lock,
    )
    reloader = add_reload(broker, settings, models=models)
    document(broker, settings)
    worker = OutcomeWorker(
        session_factory=session_factory, cost_bps=settings.cost_bps, write_lock=write_lock
    )
    service.on_stored = worker.mark_stored
    service.on_rebalanced = worker.forget
    task = asyncio.create_task(worker.run(), name="itff-outcomes") if outcomes else None
    if checkpointer is not None:
        checkpointer.start()  # here, so that the `finally` below always stops it
    try:
        await broker.start()
        await reloader.sync()
        log.info(
            "consumer ready",
            group=group_id or inference_group(settings),
            alerts=settings.topics.alerts,
            champions=models.served_versions(),
        )
        yield Consumer(broker, service, reloader, models)
    finally:
        await service.stopping()  # the batch in flight: acknowledged and committed
        await broker.stop()
        await service.close()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await engine.dispose()
        if checkpointer is not None:
            checkpointer.stop()
        if sync_engine is not None:
            sync_engine.dispose()


async def run(settings: Settings, *, metrics_port: int | None = None) -> None:
    """Run until SIGTERM or SIGINT."""
    await pull_champions(settings)  # remote champions (when configured), verified, or no start
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    port = settings.consumer_metrics_port if metrics_port is None else metrics_port
    if port:
        serve_metrics(port, settings.metrics_host)
    async with running_consumer(settings):
        frozen = freeze_startup_objects()  # models, clients, imports: out of later collections
        log.info("start-up objects frozen out of the collector", objects=frozen)
        log.info("consumer metrics", url=f"http://localhost:{port}/metrics" if port else None)
        await stop.wait()
        log.info("stopping the consumer")
