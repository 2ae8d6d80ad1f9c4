"""The receiver's app factory.

`create_app(settings)` builds everything the handlers need under typed `AppKey`s; the Kafka
producer, the outbox drainer and the database engine are owned by a `cleanup_ctx` that connects at
start-up and cancels, awaits and closes them on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.contracts import Settings
from bot.runtime import get_logger
from producers import api, webhooks
from producers.audit import AuditLog
from producers.auth import SignatureVerifier
from producers.dedupe import DuplicateWindow
from producers.delivery import AlertDelivery
from producers.history import HistoryGuard
from producers.network import IpAllowlist, forwarded_middlewares
from producers.outbox import Outbox
from producers.prediction import PredictionService
from producers.publisher import KafkaPublisher, Publisher
from producers.ratelimit import AUTH_FAILURE, RateLimits
from producers.readiness import Readiness
from producers.responses import error_middleware, quiet_malformed_http
from producers.state import (
    AUDIT,
    DELIVERY,
    GUARDS,
    METRICS,
    PREDICTION,
    READINESS,
    SETTINGS,
    Guards,
)
from producers.telemetry import ReceiverMetrics
from storage.db import create_engine, create_session_factory

log = get_logger(__name__)

ENGINE = web.AppKey("engine", AsyncEngine)
DRAINER = web.AppKey("drainer", dict[str, asyncio.Task[None]])


def create_app(
    settings: Settings, *, publisher: Publisher | None = None, predictor: Any | None = None
) -> web.Application:
    """The webhook receiver: `POST /webhook/tradingview`, `POST /webhook`, `POST /predict`,
    `GET /health`, `GET /ready`. Its metrics are served apart (`create_metrics_app`)."""
    metrics = ReceiverMetrics()
    quiet_malformed_http()
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            error_middleware(metrics, settings.max_body_bytes),
            *forwarded_middlewares(settings.trusted_proxies),
        ],
    )
    engine = create_engine(  # the outbox: storage.db
        settings.database_url, synchronous="FULL", **_one_writer(settings.database_url)
    )
    sink = publisher or KafkaPublisher(settings.bootstrap)
    dedupe = DuplicateWindow(ttl_seconds=settings.dedupe_ttl_seconds)
    sessions = create_session_factory(engine)
    outbox = Outbox(
        sessions=sessions,
        publisher=sink,
        metrics=metrics,
        max_attempts=settings.outbox_max_attempts,
        on_delivered=dedupe.remember,
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[ENGINE] = engine
    app[DRAINER] = {}
    app[GUARDS] = Guards(
        limits=RateLimits(
            {
                "webhook": settings.webhook_rate_limit,
                "api": settings.api_rate_limit,
                AUTH_FAILURE: settings.auth_failure_rate_limit,
            }
        ),
        allowlist=IpAllowlist(enabled=settings.ip_allowlist_enabled, allowed=settings.ip_allowlist),
        verifier=SignatureVerifier(settings.webhook_secrets),
        history=HistoryGuard(sessions, window=settings.revision_window_bars),
    )
    app[DELIVERY] = AlertDelivery(
        publisher=sink,
        outbox=outbox,
        topic=settings.topics.alerts,
        budget_seconds=settings.publish_timeout_seconds,
        dedupe=dedupe,
        metrics=metrics,
    )
    app[PREDICTION] = PredictionService(settings, predictor)
    app[READINESS] = Readiness(sink)
    app[AUDIT] = AuditLog(settings.report_dir, on_drop=metrics.audit_dropped.inc)
    app.cleanup_ctx.append(_audit_context)
    app.cleanup_ctx.append(_delivery_context)
    _add_routes(app)
    return app


def _one_writer(url: str) -> dict[str, Any]:
    """SQLite: one connection. Its writes are serialised by the database anyway; with a pool,
    concurrent enqueues fought over the write lock (bench/outbox.py, 16 in flight: about 170
    alerts/s and 3 ms of CPU each with the default pool, 1,100-1,400/s and 0.7 ms with one)."""
    if make_url(url).get_backend_name() == "sqlite":
        return {"pool_size": 1, "max_overflow": 0}
    return {}


def _add_routes(app: web.Application) -> None:
    app.router.add_post("/webhook/tradingview", webhooks.tradingview)
    app.router.add_post("/webhook", webhooks.signed)
    app.router.add_post("/predict", api.predict)
    app.router.add_get("/health", api.health)
    app.router.add_get("/ready", api.ready)


def create_metrics_app(receiver: web.Application) -> web.Application:
    """`GET /metrics` of `receiver`, for a listener of its own: alert volumes and rejection
    reasons are not for the public port."""
    metrics = web.Application()
    metrics[METRICS] = receiver[METRICS]
    metrics.router.add_get("/metrics", api.metrics)
    return metrics


def metrics_listener(host: str, port: int) -> Any:
    """A cleanup context for the receiver that serves its metrics on `host:port` (0: none)."""

    async def listen(app: web.Application) -> AsyncIterator[None]:
        if not port:
            yield
            return
        runner = web.AppRunner(create_metrics_app(app), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        log.info("receiver metrics listening", host=host, port=port)
        try:
            yield
        finally:
            await runner.cleanup()

    return listen


async def _audit_context(app: web.Application) -> AsyncIterator[None]:
    """The audit writer thread; on shutdown it writes what is queued, then ends."""
    app[AUDIT].start()
    try:
        yield
    finally:
        await asyncio.to_thread(app[AUDIT].stop)


async def _delivery_context(app: web.Application) -> AsyncIterator[None]:
    delivery = app[DELIVERY]
    counts = await delivery.outbox.load_counts()
    connected = await delivery.publisher.connect()
    app[METRICS].kafka_connected.set(int(connected))
    app[READINESS].record(connected)
    log.info(
        "receiver started", kafka=connected, outbox_depth=counts.queued, outbox_parked=counts.parked
    )
    drainer = asyncio.create_task(delivery.outbox.run(), name="itff-outbox-drainer")
    app[DRAINER]["outbox"] = drainer
    prober = asyncio.create_task(app[READINESS].run(), name="itff-readiness")
    app[DRAINER]["readiness"] = prober
    try:
        yield
    finally:
        for task in (prober, drainer):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await delivery.publisher.stop()
        await app[ENGINE].dispose()
        log.info("receiver stopped", outbox_depth=delivery.outbox.depth)
