"""The real broker: reachability, topics, a produce/consume round trip, start/stop/status."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bot.cli.up import ITFF, SERVICES
from bot.contracts import Alert, ConfigError, Settings, TransientError
from bot.kafka import _create, admin_client, describe_topics, ensure_topics, prepare, topic_specs
from bot.kafka import local as kafka_local
from tests.support.env import child_env
from tests.support.kafka import (
    _delete_prefixed,
    free_port,
    local_test_broker,
    run_sync,
    topic_reader,
)

pytestmark = pytest.mark.kafka


async def test_broker_answers_a_metadata_request(kafka_bootstrap: str) -> None:
    assert await kafka_local.broker_answers(kafka_bootstrap)
    async with admin_client(kafka_bootstrap) as admin:
        cluster = await admin.describe_cluster()
    assert len(cluster["brokers"]) >= 1
    assert cluster["controller_id"] is not None


async def test_ensure_topics_creates_the_configured_partition_counts(
    settings: Settings, kafka_bootstrap: str
) -> None:
    configured = settings.model_copy(
        update={"kafka_bootstrap": kafka_bootstrap, "alerts_partitions": 3, "signals_partitions": 2}
    )
    topics = configured.topics
    try:
        await ensure_topics(configured)
        await ensure_topics(configured)  # idempotent
        counts = await describe_topics(configured, topics.all())
        assert counts == {topics.alerts: 3, topics.signals: 2, topics.dlq: 1, topics.models: 1}

        async with admin_client(kafka_bootstrap) as admin:  # a racing creator: "already exists"
            await _create(admin, list(topic_specs(configured)), replication=1)

        grown = configured.model_copy(update={"alerts_partitions": 5})
        await ensure_topics(grown)
        assert (await describe_topics(grown, [topics.alerts]))[topics.alerts] == 5
    finally:
        await _delete_prefixed(kafka_bootstrap, configured.topic_prefix)


async def test_unreachable_cluster_is_a_clear_transient_error(settings: Settings) -> None:
    nowhere = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
    with pytest.raises(TransientError, match=r"not reachable.*itff kafka start"):
        await ensure_topics(nowhere)


async def test_round_trip_with_an_idempotent_producer(
    kafka_settings: Settings, sample_alert: Alert
) -> None:
    topic = kafka_settings.topics.alerts
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_settings.bootstrap, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            topic, sample_alert.model_dump_json().encode(), key=sample_alert.symbol.encode()
        )
    finally:
        await producer.stop()

    consumer = topic_reader(
        kafka_settings.bootstrap, topic, group_id=f"{kafka_settings.topic_prefix}-roundtrip"
    )
    await consumer.start()
    try:
        received = await _first_record(consumer)
    finally:
        await consumer.stop()
    assert (received.partition, received.offset) == (sent.partition, sent.offset)
    assert received.key == b"SPX"
    assert Alert.model_validate_json(received.value) == sample_alert


async def _first_record(consumer: AIOKafkaConsumer) -> object:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=1000)
        for records in batches.values():
            if records:
                return records[0]
    pytest.fail("the produced record was not consumed within 60 s")


@pytest.fixture
def sample_alert() -> Alert:
    from bot.contracts import TradingViewMessage

    message = TradingViewMessage.model_validate(
        {
            "passphrase": "x",
            "ticker": "SPX",
            "exchange": "SP",
            "interval": "1D",
            "time": "2018-06-01T00:00:00Z",
            "open": 2718.7,
            "high": 2736.93,
            "low": 2718.7,
            "close": 2734.62,
            "volume": 0,
            "action": "buy",
        }
    )
    return message.to_alert(source="tradingview")


async def test_start_is_idempotent_and_stop_is_clean(tmp_path: Path) -> None:
    broker = local_test_broker(tmp_path / "kafka")
    first = await kafka_local.start(broker)
    try:
        assert first.started
        assert first.formatted
        found = kafka_local.status(broker)
        assert found.running
        assert found.pid == first.pid
        assert found.rss_bytes is not None
        assert found.rss_bytes > 0
        again = await kafka_local.start(broker)
        assert not again.started
        assert again.pid == first.pid
    finally:
        assert kafka_local.stop(broker)
    assert not kafka_local.status(broker).running
    assert not kafka_local.port_open(broker.port)
    assert not kafka_local.stop(broker)
    assert (broker.storage_dir / "meta.properties").is_file()
    assert "started" in broker.server_log.read_text(encoding="utf-8").lower()


async def test_port_taken_by_something_else_is_refused(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        broker = local_test_broker(tmp_path / "kafka")
        broker = kafka_local.LocalBroker(
            version=broker.version,
            cache_dir=broker.cache_dir,
            data_dir=broker.data_dir,
            port=squatter.getsockname()[1],
            controller_port=broker.controller_port,
        )
        with pytest.raises(ConfigError, match=f"port {broker.port}.*not a Kafka broker"):
            await kafka_local.start(broker)


async def test_a_broker_that_cannot_start_reports_its_log(tmp_path: Path) -> None:
    base = local_test_broker(tmp_path / "kafka")
    broker = kafka_local.LocalBroker(
        version=base.version,
        cache_dir=base.cache_dir,
        data_dir=base.data_dir,
        port=base.port,
        controller_port=base.controller_port,
        heap="1x",  # the JVM refuses this heap size at once
    )
    with pytest.raises((TransientError, ConfigError), match=r"(?i)heap"):
        await kafka_local.start(broker)
    assert not kafka_local.status(broker).running


async def test_a_broker_that_exits_during_start_up_shows_the_error(tmp_path: Path) -> None:
    broker = local_test_broker(tmp_path / "kafka")
    prepare(broker)  # formatted as node 1; pretend the data came from node 2
    meta = broker.storage_dir / "meta.properties"
    meta.write_text(meta.read_text().replace("node.id=1", "node.id=2"))

    with pytest.raises(TransientError, match="exited during start-up") as failure:
        await kafka_local.start(broker)

    assert "Stored node id 2 doesn't match previous node id 1" in str(failure.value)
    assert str(broker.log_dir) in str(failure.value)
    assert not kafka_local.status(broker).running


def test_up_prepares_kafka_topics_and_database(
    settings: Settings, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """`itff up` with every service skipped: the broker, topics and schema, then a clear exit."""
    env = child_env(
        ITFF_KAFKA_BOOTSTRAP=kafka_bootstrap,
        ITFF_TOPIC_PREFIX=settings.topic_prefix,
        ITFF_DATABASE_URL=settings.database_url,
        ITFF_LOG_JSON="false",
    )
    skips = [arg for service in SERVICES for arg in ("--skip", service.name)]
    command = [*ITFF, "up", "--no-train", *skips]
    try:
        done = subprocess.run(
            command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 1, done.stderr
        assert f"kafka      external cluster {kafka_bootstrap}" in done.stdout
        assert f"{settings.topics.alerts} (6)" in done.stdout
        assert "dashboard  skipped (--skip)" in done.stdout
        assert "no service to run" in done.stderr
        database = settings.database_url.removeprefix("sqlite+aiosqlite:///")
        with sqlite3.connect(database) as db:
            assert db.execute("select version_num from alembic_version").fetchone()
    finally:
        run_sync(_delete_prefixed(kafka_bootstrap, settings.topic_prefix))
