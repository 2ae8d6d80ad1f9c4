"""Publishing `ModelEvent`s on `settings.topics.models` (key = model_key) so consumers hot-reload.

An idempotent aiokafka producer with `acks="all"`: a retried send never duplicates an event, and
`publish` returns only once the broker has it. The producer connects on the first event, so a
pipeline run that promotes nothing never needs the broker.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from bot.contracts import ModelEvent, Settings, TransientError
from bot.kafka.admin import reliable_producer
from bot.runtime import get_logger

log = get_logger(__name__)


class ModelEventPublisher:
    """`async with ModelEventPublisher(settings) as publisher: await publisher.publish(event)`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._topic = settings.topics.models
        self._producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect (once); the topics are created first when missing (idempotent)."""
        if self._producer is not None:
            return
        from bot.kafka.admin import ensure_topics

        await ensure_topics(self._settings)
        producer = reliable_producer(self._settings, "itff-pipeline")
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise TransientError(
                f"cannot reach Kafka at {self._settings.bootstrap} to publish model events "
                f"({exc}); start it with `itff kafka start` or set ITFF_KAFKA_BOOTSTRAP"
            ) from exc
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def publish(self, event: ModelEvent) -> None:
        await self.start()
        assert self._producer is not None  # start() set it or raised
        try:
            await self._producer.send_and_wait(
                self._topic,
                value=event.model_dump_json().encode(),
                key=event.model_key.encode(),
            )
        except KafkaError as exc:
            raise TransientError(
                f"model event {event.event} {event.model_key}/{event.version} was not delivered "
                f"to {self._topic}: {exc}"
            ) from exc
        log.info(
            "model_event_published",
            topic=self._topic,
            model_key=event.model_key,
            version=event.version,
            event_kind=event.event,
        )
