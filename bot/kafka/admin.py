"""The ITFF topics: created with explicit partition counts, idempotently, on any cluster.

Alerts and signals get `ITFF_ALERTS_PARTITIONS` / `ITFF_SIGNALS_PARTITIONS` (consumers in a group
scale up to that many); the dead-letter and model-event topics are low-volume and get one partition,
which keeps their order. The replication factor is 3, or the number of brokers when fewer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer

from bot.contracts import ConfigError, Settings, TransientError
from bot.runtime import get_logger

log = get_logger(__name__)

MAX_REPLICATION = 3
ADMIN_TIMEOUT_MS = 15_000
NO_ERROR = 0
TOPIC_ALREADY_EXISTS = 36
DLQ_RETENTION_MS = 30 * 24 * 3600 * 1000
VISIBLE_POLLS = 150
VISIBLE_POLL_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings) -> tuple[TopicSpec, ...]:
    """The four topics of `settings.topics` with their partition counts and configs."""
    topics = settings.topics
    return (
        TopicSpec(topics.alerts, settings.alerts_partitions),
        TopicSpec(topics.signals, settings.signals_partitions),
        TopicSpec(topics.dlq, 1, {"retention.ms": str(DLQ_RETENTION_MS)}),
        # the latest event of each model key is the state that matters; compaction keeps it
        TopicSpec(topics.models, 1, {"cleanup.policy": "compact"}),
    )


@asynccontextmanager
async def admin_client(bootstrap: str) -> AsyncIterator[Any]:
    """A started aiokafka admin client; an unreachable cluster is a `TransientError`."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="itff-admin", request_timeout_ms=ADMIN_TIMEOUT_MS
    )
    try:
        await admin.start()
    except Exception as exc:
        await admin.close()
        raise TransientError(
            f"Kafka at {bootstrap} is not reachable ({type(exc).__name__}); start it with "
            "'itff kafka start' or check ITFF_KAFKA_BOOTSTRAP"
        ) from exc
    try:
        yield admin
    finally:
        await admin.close()


async def ensure_topics(settings: Settings) -> None:
    """Create the missing ITFF topics; grow alerts/signals when more partitions are configured."""
    specs = topic_specs(settings)
    async with admin_client(settings.bootstrap) as admin:
        existing = await _partition_counts(admin, [spec.name for spec in specs])
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            await _create(admin, missing, await _replication(admin))
        await _grow(admin, specs, existing)
        await _until_visible(admin, specs)


async def describe_topics(settings: Settings, names: Iterable[str]) -> dict[str, int]:
    """Partition count of each existing topic among `names` (missing topics are left out)."""
    async with admin_client(settings.bootstrap) as admin:
        return await _partition_counts(admin, list(names))


async def _partition_counts(admin: Any, names: list[str]) -> dict[str, int]:
    described = await admin.describe_topics(names)
    return {
        topic["topic"]: len(topic["partitions"])
        for topic in described
        if topic["error_code"] == NO_ERROR
    }


async def _until_visible(admin: Any, specs: Iterable[TopicSpec]) -> None:
    """Wait until the brokers' metadata shows every topic with its partitions.

    The controller answers once a change is committed; brokers apply it a moment later, and a
    client that starts in between would see a missing topic or too few partitions.
    """
    wanted = {spec.name: spec.partitions for spec in specs}
    for _ in range(VISIBLE_POLLS):
        counts = await _partition_counts(admin, list(wanted))
        if all(counts.get(name, 0) >= n for name, n in wanted.items()):
            return
        await asyncio.sleep(VISIBLE_POLL_SECONDS)
    raise TransientError(
        f"the topics {sorted(wanted)} were created but the brokers' metadata does not show them "
        f"all after {VISIBLE_POLLS * VISIBLE_POLL_SECONDS:.0f} s; check 'itff kafka status'"
    )


async def _replication(admin: Any) -> int:
    cluster = await admin.describe_cluster()
    return max(1, min(MAX_REPLICATION, len(cluster["brokers"])))


async def _create(admin: Any, specs: list[TopicSpec], replication: int) -> None:
    from aiokafka.admin import NewTopic

    new = [NewTopic(s.name, s.partitions, replication, topic_configs=s.configs) for s in specs]
    response = await admin.create_topics(new, timeout_ms=ADMIN_TIMEOUT_MS)
    for name, code, message in _topic_errors(response):
        if code == NO_ERROR:
            log.info("kafka topic created", topic=name, replication=replication)
        elif code != TOPIC_ALREADY_EXISTS:
            raise _admin_error(f"creating topic {name}", code, message)


async def _grow(admin: Any, specs: Iterable[TopicSpec], existing: dict[str, int]) -> None:
    from aiokafka.admin import NewPartitions

    grow = {
        s.name: s.partitions for s in specs if existing.get(s.name, s.partitions) < s.partitions
    }
    for spec in specs:
        if existing.get(spec.name, spec.partitions) > spec.partitions:
            log.warning(
                "kafka topic has more partitions than configured; Kafka cannot shrink it",
                topic=spec.name,
                partitions=existing[spec.name],
                configured=spec.partitions,
            )
    if not grow:
        return
    request = {name: NewPartitions(count) for name, count in grow.items()}
    response = await admin.create_partitions(request, timeout_ms=ADMIN_TIMEOUT_MS)
    for name, code, message in _topic_errors(response):
        if code != NO_ERROR:
            raise _admin_error(f"adding partitions to {name}", code, message)
        log.info("kafka topic partitions added", topic=name, partitions=grow[name])


def _topic_errors(response: Any) -> list[tuple[str, int, str | None]]:
    """(topic, error code, message) of a CreateTopics or CreatePartitions response."""
    errors = getattr(response, "topic_errors", None) or getattr(response, "topic_results", [])
    return [(row[0], row[1], row[2] if len(row) > 2 else None) for row in errors]  # noqa: PLR2004


def _admin_error(action: str, code: int, message: str | None) -> Exception:
    from aiokafka.errors import for_code

    name = for_code(code).__name__
    text = f"{action} failed: {name} {message or ''}".strip()
    if "Authoriz" in name or "Policy" in name or "InvalidReplication" in name:
        return ConfigError(f"{text}; check the cluster's permissions and ITFF_*_PARTITIONS")
    return TransientError(f"{text}; retry, or check the cluster with 'itff kafka status'")


SEND_TIMEOUT_MS = 15_000


def reliable_producer(settings: Settings, client_id: str) -> AIOKafkaProducer:
    """The producer of every one-off publication of `bot` (model events, dead-letter replays):
    idempotent, `acks=all`, a request times out after `SEND_TIMEOUT_MS`. Not started."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        enable_idempotence=True,
        acks="all",
        request_timeout_ms=SEND_TIMEOUT_MS,
        client_id=client_id,
    )
