"""The notifier process: a FastStream batch subscriber of `itff.signals`, group `itff-notifier`.

It starts at the topic's end the first time (no flood of old signals), then at its group's
committed offset. A batch's offsets are committed (`AckPolicy.MANUAL`) once every destination's
result of each of its signals is stored; when storing fails (the database), the batch is sought
back and comes again after a pause. A crash redelivers what was not committed, and the record
skips what was already delivered or parked.
"""

from __future__ import annotations

import asyncio
import signal as signals
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from bot.contracts import DEFAULT_PREFIX, ConfigError, Settings, Signal, TransientError
from bot.runtime import get_logger, serve_metrics
from consumers.app import BATCH_TIMEOUT_MS, FETCH_MAX_WAIT_MS
from consumers.commits import Span
from consumers.deadletters import RecordRef
from consumers.notifier import telemetry
from consumers.notifier.delivery import Deliverer
from consumers.notifier.destinations import destinations, http_session
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade_async

log = get_logger(__name__)
GROUP = "itff-notifier"
ASSIGN_SECONDS = 30
MAX_RECORDS = 100
RETRY_PAUSE_SECONDS = 1.0  # before a signal whose result could not be stored comes again


def notifier_group(settings: Settings) -> str:
    """`itff-notifier`; with another topic prefix `{prefix}-notifier` (tests, benches)."""
    return GROUP if settings.topic_prefix == DEFAULT_PREFIX else f"{settings.topic_prefix}-notifier"


@dataclass(slots=True)
class Notifier:
    broker: KafkaBroker
    deliverer: Deliverer


def _decode(record: ConsumerRecord[bytes, bytes]) -> Signal | None:
    try:
        return Signal.model_validate_json(record.value or b"")
    except ValidationError as exc:
        log.error(
            "not a valid signal: not delivered (it stays on the topic)",
            partition=record.partition,
            offset=record.offset,
            error=str(exc.errors()[0]["msg"]),
        )
        telemetry.DELIVERIES.labels("-", "invalid").inc()
        return None


async def _ready(consumer: AIOKafkaConsumer) -> None:
    """Partitions assigned and positions resolved: a signal sent from now on is delivered.

    A partition the group never committed starts at its end: that start is committed at once, so
    that a notifier killed before its first commit resumes there instead of at the end again
    (which would skip every signal sent in between).
    """
    deadline = asyncio.get_running_loop().time() + ASSIGN_SECONDS
    while not consumer.assignment():
        if asyncio.get_running_loop().time() > deadline:
            raise TransientError(f"Kafka assigned the notifier no partition in {ASSIGN_SECONDS} s")
        await asyncio.sleep(0.05)
    fresh = {}
    for tp in consumer.assignment():
        position = await consumer.position(tp)
        if await consumer.committed(tp) is None:
            fresh[tp] = position
    if fresh:
        await consumer.commit(fresh)


@asynccontextmanager
async def running_notifier(settings: Settings) -> AsyncIterator[Notifier]:
    """Start the notifier; on exit stop it (the signal in flight finishes or comes again)."""
    found = destinations(settings)
    if not found:
        raise ConfigError(
            "no destination: set ITFF_SIGNAL_WEBHOOK_URLS (with ITFF_SIGNAL_WEBHOOK_SECRET), "
            "ITFF_TELEGRAM_BOT_TOKEN with ITFF_TELEGRAM_CHAT_ID, or ITFF_DISCORD_WEBHOOK_URL"
        )
    await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url)
    http = http_session(settings)
    deliverer = Deliverer(
        found,
        http=http,
        session_factory=create_session_factory(engine),
        park_after=settings.notifier_park_after_seconds,
    )
    broker = KafkaBroker(settings.bootstrap, client_id="itff-notifier", logger=None)
    subscriber = broker.subscriber(
        settings.topics.signals,
        batch=True,
        group_id=notifier_group(settings),
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="latest",
        max_records=MAX_RECORDS,
        batch_timeout_ms=BATCH_TIMEOUT_MS,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        include_in_schema=False,
    )

    @subscriber
    async def on_signals(message: KafkaMessage) -> None:
        records = list(message.raw_message)
        span = Span.of([RecordRef(b"", r.topic, r.partition, r.offset) for r in records])
        consumer = cast("AIOKafkaConsumer", message.consumer)
        try:
            await deliverer.handle([s for r in records if (s := _decode(r)) is not None])
            await consumer.commit(span.next_offsets())
        except Exception:
            log.exception("notification results not stored; the batch comes again")
            await asyncio.sleep(RETRY_PAUSE_SECONDS)
            span.rewind(consumer)

    try:
        await broker.start()
        assert subscriber.consumer is not None
        await _ready(subscriber.consumer)
        log.info(
            "notifier ready",
            group=notifier_group(settings),
            signals=settings.topics.signals,
            destinations=[d.name for d in found],
        )
        yield Notifier(broker, deliverer)
    finally:
        await broker.stop()
        await http.close()
        await engine.dispose()


async def run(settings: Settings, *, metrics_port: int | None = None) -> None:
    """Run until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signals.SIGTERM, signals.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    port = settings.notifier_metrics_port if metrics_port is None else metrics_port
    if port:
        serve_metrics(port, settings.metrics_host)
    async with running_notifier(settings):
        await stop.wait()
        log.info("stopping the notifier")
