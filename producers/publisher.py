"""The Kafka side of the receiver: an idempotent aiokafka producer (`acks=all`).

`send()` hands the record to the producer and returns aiokafka's delivery future (no task of our
own per record); the caller waits for it within its time budget and, if the budget runs out, keeps
the future as "in flight": aiokafka's idempotent producer retries an in-flight batch until the
broker takes it, so the outbox must not publish a second copy meanwhile.

`refuses_record(error)` tells a refusal of the record itself (too large, a topic this client may
not write, an invalid topic, a corrupt record), which sending it again will not change, from
everything else (broker down, timeouts): only the former count towards parking an outbox entry.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
)

from bot.contracts import TransientError
from bot.runtime import get_logger

log = get_logger(__name__)

REQUEST_TIMEOUT_MS = 10_000
CONNECT_TIMEOUT_S = 10.0
RECORD_REFUSALS = (
    CorruptRecordException,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
)


def refuses_record(error: BaseException) -> bool:
    """True when Kafka refused the record itself: sending it again unchanged fails again."""
    return isinstance(error, RECORD_REFUSALS)


def _refused(error: KafkaError) -> asyncio.Future[Any]:
    delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    delivery.set_exception(error)
    return delivery


class Publisher(Protocol):
    """What the receiver needs from a message broker client."""

    bootstrap: str

    @property
    def connected(self) -> bool: ...

    async def connect(self) -> bool: ...

    async def stop(self) -> None: ...

    async def send(self, topic: str, key: bytes, value: bytes) -> asyncio.Future[Any]: ...

    async def ping(self, within: float) -> bool: ...


async def _close(producer: AIOKafkaProducer) -> None:
    try:
        await producer.stop()
    except (KafkaError, OSError) as exc:  # closing a producer that never connected
        log.debug("closing an unconnected producer failed", error=repr(exc))


class KafkaPublisher:
    """An aiokafka producer that may start while the broker is down and connect later."""

    def __init__(self, bootstrap: str, *, client_id: str = "itff-webhook") -> None:
        self.bootstrap = bootstrap
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Future[Any]] = set()

    @property
    def connected(self) -> bool:
        return self._producer is not None

    async def connect(self) -> bool:
        """Start the producer if it is not running; False (and logged) if the broker is down."""
        async with self._lock:
            if self._producer is not None:
                return True
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                client_id=self._client_id,
                enable_idempotence=True,
                acks="all",
                linger_ms=0,
                request_timeout_ms=REQUEST_TIMEOUT_MS,
            )
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):  # not wait_for: it can eat a cancel
                    await producer.start()
            except (KafkaError, OSError, TimeoutError) as exc:
                await _close(producer)
                log.warning("kafka unreachable", bootstrap=self.bootstrap, error=repr(exc))
                return False
            except asyncio.CancelledError:
                await asyncio.shield(_close(producer))
                raise
            self._producer = producer
            log.info("kafka connected", bootstrap=self.bootstrap)
            return True

    async def stop(self) -> None:
        """Flush what is in flight (bounded), then close."""
        async with self._lock:
            producer, self._producer = self._producer, None
        if self._pending:
            await asyncio.wait(self._pending, timeout=REQUEST_TIMEOUT_MS / 1000)
        if producer is not None:
            await producer.stop()

    async def send(self, topic: str, key: bytes, value: bytes) -> asyncio.Future[Any]:
        """Hand the record to the producer; the future completes when Kafka acknowledged it
        (acks=all) or fails with the producer's error, as it does at once when the producer
        refused the record itself (`refuses_record`). `TransientError` if it was not taken."""
        producer = self._producer
        if producer is None:
            raise TransientError(f"Kafka at {self.bootstrap} is not connected")
        try:
            delivery: asyncio.Future[Any] = await producer.send(topic, value=value, key=key)
        except RECORD_REFUSALS as exc:
            return _refused(exc)
        except KafkaError as exc:
            raise TransientError(f"Kafka did not take the record: {exc!r}") from exc
        self._pending.add(delivery)
        delivery.add_done_callback(self._pending.discard)
        return delivery

    async def ping(self, within: float) -> bool:
        """True when the broker answers a metadata request within `within` seconds."""
        producer = self._producer
        if producer is None:
            return False
        try:
            async with asyncio.timeout(within):
                return bool(await producer.client.force_metadata_update())
        except (TimeoutError, KafkaError):
            return False
