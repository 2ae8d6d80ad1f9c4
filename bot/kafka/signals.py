"""Reading `itff.signals` as a downstream subscriber: no consumer group, nothing committed.

`tail_signals` yields every record from the end (or the beginning) of the topic as it arrives,
each decoded as a `Signal` or with the reason it is not one (nothing is skipped silently).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from bot.contracts import Settings, Signal, TransientError
from bot.kafka.admin import SEND_TIMEOUT_MS

ASSIGN_SECONDS = 15
POLL_MS = 500


@dataclass(frozen=True, slots=True)
class TailedRecord:
    """One record of the signals topic: its signal, or why it is not one."""

    partition: int
    offset: int
    value: bytes
    signal: Signal | None
    error: str | None = None


def decode_signal(partition: int, offset: int, value: bytes | None) -> TailedRecord:
    raw = value or b""
    try:
        return TailedRecord(partition, offset, raw, Signal.model_validate_json(raw))
    except ValidationError as exc:
        why = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()[:3]
        )
        return TailedRecord(partition, offset, raw, None, f"not a valid signal: {why}")
    except (ValueError, RecursionError) as exc:
        return TailedRecord(partition, offset, raw, None, f"not a valid signal: {exc}")


async def _assigned(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    deadline = asyncio.get_running_loop().time() + ASSIGN_SECONDS
    while not consumer.assignment():
        if asyncio.get_running_loop().time() > deadline:
            raise TransientError(f"Kafka gave no partitions of {topic} in {ASSIGN_SECONDS} s")
        await asyncio.sleep(0.05)
    return sorted(consumer.assignment())


async def tail_signals(
    settings: Settings,
    *,
    from_beginning: bool = False,
    on_ready: Callable[[str], None] | None = None,
) -> AsyncIterator[TailedRecord]:
    """Signals as they arrive, from the topic's end (or its beginning); `on_ready(topic)` once
    the position is set, so that anything sent afterwards is seen."""
    topic = settings.topics.signals
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        client_id="itff-signals-tail",
        request_timeout_ms=SEND_TIMEOUT_MS,
    )
    try:
        await consumer.start()
        if topic not in await consumer.topics():
            raise TransientError(
                f"{topic} does not exist on {settings.bootstrap}: start ITFF with `itff up` "
                "(or create the topics with `itff kafka topics`)"
            )
        consumer.subscribe([topic])  # without a group: every partition, nothing committed
        assigned = await _assigned(consumer, topic)
        await (consumer.seek_to_beginning if from_beginning else consumer.seek_to_end)(*assigned)
        for tp in assigned:
            await consumer.position(tp)  # resolved now: a signal sent after on_ready is seen
        if on_ready is not None:
            on_ready(topic)
        while True:
            batches = await consumer.getmany(timeout_ms=POLL_MS)
            for tp, records in sorted(batches.items()):
                for record in records:
                    yield decode_signal(tp.partition, record.offset, record.value)
    except KafkaError as exc:
        raise TransientError(
            f"cannot reach Kafka at {settings.bootstrap} ({exc}); start it with "
            "`itff kafka start` or set ITFF_KAFKA_BOOTSTRAP"
        ) from exc
    finally:
        await consumer.stop()
