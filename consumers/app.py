"""The FastStream consumer app: alerts -> signals (group `itff-inference`) and model hot reload.

Delivery: the alerts subscriber is a batch subscriber with auto-commit off that acknowledges
explicitly (`AckPolicy.MANUAL`). Once a batch's bars and signals are stored, its signals and dead
letters are sent, and the batch's offsets are committed in one request after Kafka acknowledged
them - in the background, while the next batch is processed (`consumers.commits`, in order, at
most one batch in flight).

Failures (`consumers.failures` tells them apart): a transient one (database busy, Kafka, a
timeout) seeks every partition of the batch back to its first record after a backoff (1 s,
doubling to 10 s, reset once a batch is published), so the batch is redelivered; a deterministic
one (caused by a record) never stalls: the service isolates the records that fail alone and
dead-letters them (`processing_failed`), and the rest of the batch goes on as usual.
Storage is idempotent, so a redelivery, a crash or a rebalance never doubles a row.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from typing import Annotated, Any, cast

from aiokafka import AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream._internal.context import Context  # the class `faststream.Context()` builds
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from bot.contracts import (
    DEFAULT_PREFIX,
    INFERENCE_GROUP,
    DeadLetter,
    ModelEvent,
    Settings,
    Signal,
    utcnow,
)
from bot.runtime import get_logger
from consumers import telemetry
from consumers.commits import CommitPipeline, OffsetConsumer, Span
from consumers.deadletters import RecordRef
from consumers.failures import Backoff, is_transient, stage_of
from consumers.polling import IDLE_POLL_MS, prompt
from consumers.reload import Reloader, remote_pull
from consumers.served_models import ServedModels
from consumers.service import BatchResult, InferenceService

log = get_logger(__name__)


class _OnTheLoop(Context):
    """FastStream's `Context` field, resolved on the event loop. fast_depends runs a field's
    synchronous `use` in a worker thread (`anyio.to_thread`), so the handler's `message`
    parameter cost a thread hop before every batch (1.5-2.6 ms median for a lone alert on the
    loaded development machine, between the poll and the handler); reading a context variable
    needs no thread."""

    async def use(self, /, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return super().use(**kwargs)


# the batch's FastStream message (raw records, consumer), injected without a thread hop
AlertsMessage = Annotated[KafkaMessage, _OnTheLoop("message")]

# Low latency without a busy loop (see docs/consumers.md): `getmany` returns as soon as records
# are buffered; an idle subscriber of FastStream's waits BATCH_TIMEOUT_MS, then sleeps as long
# before polling again (the alerts subscriber polls without the sleep: `consumers.polling`).
BATCH_TIMEOUT_MS = 5
MAX_RECORDS = 500
FETCH_MAX_WAIT_MS = 100
JSON_HEADERS = [("content-type", b"application/json")]
LOGGED_IDS = 50  # alert ids named in a batch's log line


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partitions move: the batch in flight is settled (acknowledged and committed) while they
    are still ours; what another consumer may have stored meanwhile (bars in the windows, signals
    the outcome worker bounds its reads by) is read again."""

    def __init__(self, service: InferenceService, pipeline: CommitPipeline) -> None:
        self._service = service
        self._pipeline = pipeline

    async def on_partitions_revoked(self, revoked: Any) -> None:  # noqa: ARG002
        await self._pipeline.drain()
        self._service.rebalanced()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._service.rebalanced()
        log.info(
            "partitions assigned",
            partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned),
        )


class Emitter:
    """Sends a batch's signals and dead letters; the caller waits for the acknowledgements.

    Its own idempotent aiokafka producer (`acks=all`): sends are queued without waiting one by
    one and awaited together, and skip FastStream's per-message publish path, which costs about
    five times the CPU per record (bench/e2e.py).
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.bootstrap,
            client_id="itff-consumer-emitter",
            acks="all",
            enable_idempotence=True,
        )
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def send(self, result: BatchResult) -> list[asyncio.Future[Any]]:
        """Queue every record of the batch; the futures complete on Kafka's acknowledgement."""
        if self._producer is None:
            await self.start()
        topics = self._settings.topics
        pending = [
            await self._send(signal, topics.signals, signal.symbol.encode())
            for signal in (*result.signals, *result.redelivered)
        ]
        pending += [await self._send(letter, topics.dlq, None) for letter in result.dead_letters]
        return pending

    async def _send(
        self, message: Signal | DeadLetter, topic: str, key: bytes | None
    ) -> asyncio.Future[Any]:
        assert self._producer is not None
        future: asyncio.Future[Any] = await self._producer.send(
            topic, message.model_dump_json().encode(), key=key, headers=JSON_HEADERS
        )
        return future


def observe(result: BatchResult) -> None:
    """Once acknowledged: metrics, one debug line per signal and one info line per batch (with
    its alert ids)."""
    acknowledged = utcnow().timestamp()
    debug = log.is_enabled_for(logging.DEBUG)
    for signal in result.signals:
        received = signal.emitted_at.timestamp() - signal.latency_ms / 1000
        telemetry.END_TO_END_LATENCY.observe(max(0.0, acknowledged - received))
        if debug:
            log.debug(
                "signal",
                alert_id=signal.alert_id,
                model_key=signal.model_key,
                model_version=signal.model_version,
                action=signal.action,
                latency_ms=round(signal.latency_ms, 2),
            )
    for redelivered, signals in (("false", result.signals), ("true", result.redelivered)):
        for action, count in Counter(s.action for s in signals).items():
            telemetry.SIGNALS.labels(action=action, redelivered=redelivered).inc(count)
    for letter in result.dead_letters:
        telemetry.DEAD_LETTERS.labels(reason=letter.reason).inc()
        log.warning("dead letter", reason=letter.reason, error=letter.error, offset=letter.offset)
    if result.signals or result.redelivered:
        alert_ids = sorted({s.alert_id for s in (*result.signals, *result.redelivered)})
        log.info(
            "signals published",
            alert_ids=alert_ids[:LOGGED_IDS],
            alerts=len(alert_ids),
            signals=len(result.signals),
            redelivered=len(result.redelivered),
        )


def create_broker(settings: Settings, *, client_id: str = "itff-consumer") -> KafkaBroker:
    return KafkaBroker(
        settings.bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        middlewares=[KafkaPrometheusMiddleware(registry=REGISTRY, app_name="itff-consumer")],
        logger=None,
        graceful_timeout=15.0,
    )


def inference_group(settings: Settings) -> str:
    """`itff-inference`; with another topic prefix `{prefix}-inference`, so that test and bench
    runs on a shared broker never rebalance each other's groups."""
    if settings.topic_prefix == DEFAULT_PREFIX:
        return INFERENCE_GROUP
    return f"{settings.topic_prefix}-inference"


class AlertBatches:
    """One batch of alerts: processed and stored, its signals sent, then acknowledged and
    committed by the commit pipeline while the next batch is processed. A transient failure
    rewinds the batch (and one held back behind it) after a backoff so that Kafka delivers it
    again; a deterministic one dead-letters the records that cause it and goes on."""

    def __init__(
        self, service: InferenceService, emitter: Emitter, pipeline: CommitPipeline
    ) -> None:
        self.service, self.emitter, self.pipeline = service, emitter, pipeline
        self.backoff = pipeline.backoff  # one for the batch: reset once a batch is published

    async def handle(self, message: KafkaMessage) -> None:
        refs = [
            RecordRef(record.value or b"", record.topic, record.partition, record.offset)
            for record in message.raw_message
        ]
        telemetry.BATCH_SIZE.observe(len(refs))
        span, consumer = Span.of(refs), cast("OffsetConsumer", message.consumer)
        result = await self._process(refs, span, consumer)
        failed = await self.pipeline.settle()
        if failed is not None:  # the batch before was not published: both come again
            span.rewind(consumer, keep=failed)
            log.warning("batch held back: the one before it is redelivered", records=len(refs))
            return
        pending = await self._send(result, span, consumer, records=len(refs))
        self.pipeline.start(consumer, span, pending, functools.partial(observe, result))
        if self.pipeline.closing:
            await self.pipeline.drain()

    async def _process(
        self, refs: list[RecordRef], span: Span, consumer: OffsetConsumer
    ) -> BatchResult:
        try:
            return await self.service.process(refs)
        except Exception as exc:
            if is_transient(exc):
                await self._retry_later(exc, span, consumer, records=len(refs))
                raise
            error = exc
        try:
            return await self.service.isolate(refs, error)
        except Exception as exc:  # transient: isolation raises nothing else
            await self._retry_later(exc, span, consumer, records=len(refs))
            raise

    async def _retry_later(
        self, error: Exception, span: Span, consumer: OffsetConsumer, *, records: int
    ) -> None:
        """The batch in flight settled first, then the backoff, then this batch rewound."""
        failed = await self.pipeline.settle()
        telemetry.BATCH_FAILURES.inc()
        await self.backoff.wait(stage_of(error), error, records=records)
        span.rewind(consumer, keep=failed)

    async def _send(
        self, result: BatchResult, span: Span, consumer: OffsetConsumer, *, records: int
    ) -> list[asyncio.Future[Any]]:
        try:
            return await self.emitter.send(result)
        except KafkaError as exc:
            telemetry.BATCH_FAILURES.inc()
            await self.backoff.wait("publish", exc, records=records)
            span.rewind(consumer)
            raise


def add_inference(
    broker: KafkaBroker,
    settings: Settings,
    *,
    session_factory: async_sessionmaker[AsyncSession],
    models: ServedModels,
    group_id: str | None = None,
    sync_sessions: sessionmaker[Session] | None = None,
    write_lock: asyncio.Lock | None = None,
) -> InferenceService:
    """Subscribe the alerts -> signals handler; returns its service (windows, for tests)."""
    service = InferenceService(
        session_factory=session_factory,
        champion_specs=models.specs,
        predict=models.predict_windows,
        lookback=settings.lookback,
        sync_sessions=sync_sessions,
        bounds=settings.bar_bounds,
        revision_window=settings.revision_window_bars,
        write_lock=write_lock,
    )
    emitter = Emitter(settings)
    pipeline = CommitPipeline(Backoff())
    service.on_stopping = pipeline.close
    service.on_close = emitter.stop
    batches = AlertBatches(service, emitter, pipeline)

    subscriber = broker.subscriber(
        settings.topics.alerts,
        batch=True,
        group_id=group_id or inference_group(settings),
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        max_records=MAX_RECORDS,
        batch_timeout_ms=IDLE_POLL_MS,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        listener=Rebalance(service, pipeline),
        include_in_schema=False,  # raw records: `consumers.contract` documents the topic
    )

    @subscriber
    async def on_alerts(message: AlertsMessage) -> None:
        await batches.handle(message)

    prompt(subscriber)  # a lone alert is not held by an idle sleep

    return service


def add_reload(broker: KafkaBroker, settings: Settings, *, models: ServedModels) -> Reloader:
    """Subscribe the hot-reload handler on the models topic (per-process, newest events only).

    With a remote configured, each event first installs the key's remote champion.
    """
    reloader = Reloader(models, pull=remote_pull(settings))

    @broker.subscriber(
        settings.topics.models,
        group_id=None,
        auto_offset_reset="latest",
        ack_policy=AckPolicy.ACK_FIRST,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        title=settings.topics.models,
        description=(
            "Champion changes; key = model_key. Sent by the daily pipeline and `itff rollback`; "
            "every consumer process reads the newest (no group) and hot-reloads the model."
        ),
    )
    async def on_model_event(event: ModelEvent) -> None:
        await reloader.handle(event)

    return reloader
