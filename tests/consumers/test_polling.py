"""The alerts subscriber's poll (`consumers.polling`): an empty poll is followed by the next poll,
and the consumer app's alerts subscriber polls that way."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, get_type_hints

import pytest
from aiokafka import AIOKafkaProducer
from fast_depends.library import CustomField
from faststream.kafka import KafkaBroker

from bot.contracts import Settings
from consumers.app import add_inference, create_broker
from consumers.polling import PromptBatchSubscriber, prompt
from consumers.served_models import PredictorModels
from storage.db import create_engine, create_session_factory
from tests.support.kafka import topic_reader


@asynccontextmanager
async def alerts_subscriber(settings: Settings) -> AsyncIterator[Any]:
    """The consumer app's alerts subscriber, as `consumers.app` wires it."""
    broker = create_broker(settings)
    engine = create_engine(settings.database_url)
    try:
        add_inference(
            broker,
            settings,
            session_factory=create_session_factory(engine),
            models=PredictorModels.from_settings(settings),
        )
        (alerts,) = [s for s in broker.subscribers if settings.topics.alerts in s.topic_names]
        yield alerts
    finally:
        await engine.dispose()


async def test_the_alerts_subscriber_polls_without_an_idle_sleep(settings: Settings) -> None:
    async with alerts_subscriber(settings) as alerts:
        assert isinstance(alerts, PromptBatchSubscriber)


async def test_the_alerts_handler_gets_its_message_without_a_worker_thread(
    settings: Settings,
) -> None:
    """fast_depends resolves a synchronous field (FastStream's `Context`) in an anyio worker
    thread: a thread hop before every batch, on a lone alert's path. Each field of the alerts
    handler is a coroutine, awaited on the event loop."""
    async with alerts_subscriber(settings) as alerts:
        handler = alerts.calls[0].handler._original_call  # the function itself
    hints = get_type_hints(handler, include_extras=True)
    fields = [f for hint in hints.values() for f in getattr(hint, "__metadata__", ())]
    assert fields
    assert all(isinstance(f, CustomField) for f in fields)
    assert all(inspect.iscoroutinefunction(f.use) for f in fields)


def test_prompt_refuses_a_subscriber_that_is_not_a_batch_subscriber() -> None:
    broker = KafkaBroker("localhost:9")
    single = broker.subscriber("alerts", group_id="g")
    with pytest.raises(TypeError, match="batch subscriber"):
        prompt(single)  # type: ignore[arg-type]


@pytest.mark.kafka
async def test_an_empty_poll_returns_nothing_and_the_next_returns_the_record(
    kafka_settings: Settings,
) -> None:
    """On the real broker: idle, the poll comes back empty (no record invented, none lost), and a
    record sent then is returned whole by the next poll."""
    topic = kafka_settings.topics.alerts
    broker = KafkaBroker(kafka_settings.bootstrap)
    subscriber = prompt(broker.subscriber(topic, batch=True, batch_timeout_ms=50, max_records=10))
    consumer = topic_reader(
        kafka_settings.bootstrap, topic, group_id=f"{kafka_settings.topic_prefix}-polling"
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap)
    await consumer.start()
    await producer.start()
    try:
        assert await subscriber.get_msg(consumer) == ()
        await producer.send_and_wait(topic, b"one", key=b"SPX")
        records: tuple[object, ...] = ()
        async with asyncio.timeout(30):
            while not records:
                records = await subscriber.get_msg(consumer)
        assert [r.value for r in records] == [b"one"]  # type: ignore[attr-defined]
    finally:
        await producer.stop()
        await consumer.stop()
