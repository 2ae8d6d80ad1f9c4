"""A real Kafka broker for the test session, and per-test settings whose topics exist on it.

`kafka_bootstrap` takes, in order: `ITFF_KAFKA_BOOTSTRAP` (e.g. the shared development broker on
localhost:9092); a testcontainers Kafka container when a Docker engine answers; otherwise the
project's own local broker (Apache Kafka jars, KRaft) on free ports with its data in a temporary
folder, stopped at the end of the session. It never skips: without a broker the tests fail, saying
why.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer

from bot.contracts import ItffError, Settings
from bot.kafka import admin_client, ensure_topics
from bot.kafka import local as kafka_local

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VERSION: str = Settings.model_fields["kafka_version"].default
# the same Apache Kafka as the local broker, compose and CI (KRaft, one node)
CONTAINER_IMAGE = f"apache/kafka:{DEFAULT_VERSION}"


def topic_reader(bootstrap: str, topic: str, *, group_id: str | None = None) -> AIOKafkaConsumer:
    """A plain aiokafka consumer that reads `topic` from its start and commits nothing (not yet
    started): what tests read a topic's records with."""
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cache_dir() -> Path:
    configured = Path(os.environ.get("ITFF_KAFKA_CACHE_DIR", ".cache/kafka"))
    return configured if configured.is_absolute() else ROOT / configured


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on a private loop; unlike `asyncio.run` it leaves pytest-asyncio's loop alone."""
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        return runner.run(coro)


def _docker_answers() -> bool:
    """True when a Docker engine answers `/_ping` (testcontainers can then start Kafka)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        path = host.removeprefix("unix://")
        if not Path(path).exists():
            return False
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(3)
                sock.connect(path)
                sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                return b" 200 " in sock.recv(256)
        except OSError:
            return False
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _external(bootstrap: str) -> str:
    if not run_sync(kafka_local.broker_answers(bootstrap, wait_seconds=10.0)):
        pytest.fail(
            f"ITFF_KAFKA_BOOTSTRAP={bootstrap} does not answer a metadata request; start the "
            "shared broker with '.venv/bin/itff kafka start' or unset ITFF_KAFKA_BOOTSTRAP"
        )
    return bootstrap


def _container() -> Iterator[str]:
    # testcontainers' KafkaContainer drives Confluent's images only: the Apache image is configured
    # as compose and CI configure it, advertising the host port it is published on
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    port = free_port()
    container = (
        DockerContainer(CONTAINER_IMAGE)
        .with_bind_ports(9092, port)
        .with_envs(
            KAFKA_NODE_ID="1",
            KAFKA_PROCESS_ROLES="broker,controller",
            KAFKA_LISTENERS="PLAINTEXT://:9092,CONTROLLER://:9093",
            KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://localhost:{port}",
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
            KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
            KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
            KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
            KAFKA_AUTO_CREATE_TOPICS_ENABLE="false",
        )
        .waiting_for(LogMessageWaitStrategy("Kafka Server started"))
    )
    with container:
        yield f"localhost:{port}"


def local_test_broker(data_dir: Path) -> kafka_local.LocalBroker:
    """The project's broker on two free ports, its data under `data_dir`."""
    return kafka_local.LocalBroker(
        version=os.environ.get("ITFF_KAFKA_VERSION") or DEFAULT_VERSION,
        cache_dir=_cache_dir(),
        data_dir=data_dir,
        port=free_port(),
        controller_port=free_port(),
        heap="384m",
    )


def _local(data_dir: Path) -> Iterator[str]:
    broker = local_test_broker(data_dir)
    try:
        run_sync(kafka_local.start(broker))
    except ItffError as exc:
        pytest.fail(
            f"no Kafka broker for the tests: ITFF_KAFKA_BOOTSTRAP is unset, no Docker engine "
            f"answers, and the local broker failed to start: {exc}"
        )
    try:
        yield broker.bootstrap
    finally:
        kafka_local.stop(broker)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`host:port` of a real Kafka broker for the whole test session."""
    configured = os.environ.get("ITFF_KAFKA_BOOTSTRAP", "").strip()
    if configured:
        yield _external(configured)
    elif _docker_answers():
        yield from _container()
    else:
        yield from _local(tmp_path_factory.mktemp("kafka"))


async def _delete_prefixed(bootstrap: str, prefix: str) -> None:
    async with admin_client(bootstrap) as admin:
        mine = [name for name in await admin.list_topics() if name.startswith(f"{prefix}.")]
        if mine:
            await admin.delete_topics(mine)


@pytest.fixture
async def kafka_settings(settings: Settings, kafka_bootstrap: str) -> AsyncIterator[Settings]:
    """The test's settings pointed at the session broker, with its own four topics created.

    The topics (everything under the test's prefix) are deleted afterwards, so a long-lived shared
    broker does not pile up partitions.
    """
    configured = settings.model_copy(update={"kafka_bootstrap": kafka_bootstrap})
    await ensure_topics(configured)
    yield configured
    with suppress(ItffError):  # the broker went away; the session fixture reports that
        await _delete_prefixed(kafka_bootstrap, configured.topic_prefix)
