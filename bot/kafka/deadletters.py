"""Reading the dead-letter topic and sending its originals to the alerts topic again.

The topic is read from the beginning to its end at the time of the call with a plain aiokafka
consumer without a group: nothing is committed, so reading changes nothing for anyone. A replay
sends each original's bytes unchanged (the same `alert_id`), keyed by its symbol, with an
idempotent producer (`acks="all"`); the consumer's storage is idempotent per alert and model, so an
alert that already has signals gets none again.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from bot.contracts import Alert, BadInput, DeadLetter, Settings, TransientError
from bot.kafka.admin import SEND_TIMEOUT_MS, reliable_producer

# an original that does not decode as an `Alert` would only be dead-lettered again
NOT_AN_ALERT = "not a valid alert"
DUPLICATE = "the same alert as an earlier letter"
ASSIGN_SECONDS = 15
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$", re.IGNORECASE)
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True, slots=True)
class StoredLetter:
    """A dead letter at its place on the dead-letter topic, with its original when an alert."""

    partition: int
    offset: int
    letter: DeadLetter
    alert: Alert | None

    @property
    def ref(self) -> str:
        return f"{self.partition}:{self.offset}"


@dataclass(frozen=True, slots=True)
class DeadLetters:
    """The topic's letters in partition and offset order; `unreadable`: records that are not a
    `DeadLetter` (partition:offset)."""

    letters: list[StoredLetter]
    unreadable: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LetterFilter:
    """Letters of one of `reasons` (any when empty) that failed in [since, until]."""

    reasons: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, letter: DeadLetter) -> bool:
        return (
            (not self.reasons or letter.reason in self.reasons)
            and (self.since is None or letter.failed_at >= self.since)
            and (self.until is None or letter.failed_at <= self.until)
        )

    def apply(self, letters: Iterable[StoredLetter]) -> list[StoredLetter]:
        return [stored for stored in letters if self.matches(stored.letter)]


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """What a replay sends, in the order of the originals, and what it skips, counted by why."""

    send: list[StoredLetter]
    skipped: dict[str, int]


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """An ISO date or time (UTC unless it says otherwise), or a duration before `now` (`90m`,
    `2h`, `3d`, `1w`)."""
    value = text.strip()
    if match := _DURATION.match(value):
        amount = timedelta(**{_UNIT[match.group(2).lower()]: int(match.group(1))})
        return (now or datetime.now(UTC)) - amount
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadInput(
            f"{text!r} is neither a date or time (2026-12-01, 2026-12-01T08:00:00Z) nor a "
            "duration (90m, 2h, 3d, 1w)"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def decode_alert(original: bytes) -> Alert | None:
    """The original as an `Alert`, or None when it is not one."""
    try:
        return Alert.model_validate_json(original)
    except (ValidationError, ValueError, RecursionError):
        return None


def _stored(partition: int, offset: int, value: bytes | None) -> StoredLetter | None:
    try:
        letter = DeadLetter.model_validate_json(value or b"")
    except (ValidationError, ValueError, RecursionError):
        return None
    return StoredLetter(partition, offset, letter, decode_alert(letter.original))


def _unreachable(settings: Settings, exc: Exception) -> TransientError:
    return TransientError(
        f"cannot reach Kafka at {settings.bootstrap} ({exc}); start it with "
        "`itff kafka start` or set ITFF_KAFKA_BOOTSTRAP"
    )


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    return any([await consumer.position(tp) < end for tp, end in ends.items()])


async def _drain(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> DeadLetters:
    letters: list[StoredLetter] = []
    unreadable: list[str] = []
    while await _behind(consumer, ends):
        batches = await consumer.getmany(*ends, timeout_ms=500)
        for records in batches.values():
            for record in records:
                stored = _stored(record.partition, record.offset, record.value)
                if stored is None:
                    unreadable.append(f"{record.partition}:{record.offset}")
                else:
                    letters.append(stored)
    letters.sort(key=lambda stored: (stored.partition, stored.offset))
    return DeadLetters(letters, unreadable)


async def _assigned(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions once the consumer (subscribed, no group) has them all."""
    deadline = asyncio.get_running_loop().time() + ASSIGN_SECONDS
    while not consumer.assignment():
        if asyncio.get_running_loop().time() > deadline:
            raise TransientError(f"Kafka gave no partitions of {topic} in {ASSIGN_SECONDS} s")
        await asyncio.sleep(0.05)
    return sorted(consumer.assignment())


async def read_dead_letters(settings: Settings) -> DeadLetters:
    """Every letter on `settings.topics.dlq`, from the beginning to the end it has now."""
    topic = settings.topics.dlq
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="itff-dlq",
        request_timeout_ms=SEND_TIMEOUT_MS,
    )
    try:
        await consumer.start()
        if topic not in await consumer.topics():
            return DeadLetters([])
        consumer.subscribe([topic])  # without a group: every partition, nothing committed
        assigned = await _assigned(consumer, topic)
        await consumer.seek_to_beginning(*assigned)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(assigned)
        return await _drain(consumer, ends)
    except KafkaError as exc:
        raise _unreachable(settings, exc) from exc
    finally:
        await consumer.stop()


def plan_replay(letters: Sequence[StoredLetter], *, include_invalid: bool = False) -> ReplayPlan:
    """Each original once (an alert dead-lettered for several models has several letters), in the
    order it had on its topic; originals that are not alerts only with `include_invalid`."""
    send: list[StoredLetter] = []
    skipped: dict[str, int] = {}
    seen: set[str | bytes] = set()
    ordered = sorted(letters, key=lambda s: (s.letter.partition or 0, s.letter.offset or 0))
    for stored in ordered:
        identity = stored.alert.alert_id if stored.alert else stored.letter.original
        why = DUPLICATE if identity in seen else None
        if why is None and stored.alert is None and not include_invalid:
            why = NOT_AN_ALERT
        if why is None:
            seen.add(identity)
            send.append(stored)
        else:
            skipped[why] = skipped.get(why, 0) + 1
    return ReplayPlan(send, skipped)


async def republish(settings: Settings, letters: Sequence[StoredLetter]) -> int:
    """Send the originals unchanged to `settings.topics.alerts`, keyed by symbol (no key for an
    original that is not an alert); returns once Kafka acknowledged every one."""
    producer = reliable_producer(settings, "itff-dlq-replay")
    try:
        await producer.start()
        sent = [
            await producer.send(
                settings.topics.alerts,
                value=stored.letter.original,
                key=stored.alert.symbol.encode() if stored.alert else None,
            )
            for stored in letters
        ]
        await asyncio.gather(*sent)
    except KafkaError as exc:
        raise _unreachable(settings, exc) from exc
    finally:
        await producer.stop()
    return len(sent)
