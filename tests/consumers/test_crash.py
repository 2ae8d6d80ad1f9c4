"""At-least-once delivery + idempotent storage = exactly one signal per alert and model, even when a
consumer process is killed mid-stream or a consumer leaves the group mid-stream."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Alert, Settings
from bot.kafka import ensure_topics
from bot.kafka import local as kafka_local
from consumers.runner import running_consumer
from storage.tables import Bar
from tests.support.consumer import (
    SEED_BARS,
    alerts_for,
    count_rows,
    eventually,
    publish_champions,
    read_topic,
    sample_bars,
    seed_bars,
    signal_rows,
    signals_of,
)
from tests.support.env import child_env
from tests.support.kafka import local_test_broker
from tests.support.postgres import both_stores

pytestmark = [pytest.mark.kafka, pytest.mark.slow, both_stores]
ITFF = Path(sys.executable).with_name("itff")


def consumer_env(settings: Settings) -> dict[str, str]:
    return child_env(settings, ITFF_LOG_JSON="true")


def start_consumer(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(ITFF), "consumer", "--metrics-port", "0"],
            env=consumer_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def trickle(settings: Settings, alerts: list[Alert], *, chunk: int = 5) -> None:
    """Publish the stream in small chunks so that it is still flowing when a consumer dies."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        for start in range(0, len(alerts), chunk):
            for alert in alerts[start : start + chunk]:
                await producer.send(
                    settings.topics.alerts, alert.model_dump_json().encode(), alert.symbol.encode()
                )
            await producer.flush()
            await asyncio.sleep(0.1)
    finally:
        await producer.stop()


async def ready(log: Path, count: int) -> bool:
    """The consumer processes logged `consumer ready` `count` times (imports can be slow)."""
    text = await asyncio.to_thread(lambda: log.read_text() if log.exists() else "")
    return text.count('"consumer ready"') >= count


def assert_one_signal_per_alert_and_model(
    rows: list[tuple[str, str]], alerts: list[Alert], keys: list[str]
) -> None:
    counts = Counter(rows)
    assert set(counts) == {(a.alert_id, k) for a in alerts for k in keys}
    assert set(counts.values()) == {1}


async def test_sigkill_mid_stream_then_restart_gives_exactly_one_signal_per_alert_and_model(
    kafka_settings: Settings, session_factory: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    settings = kafka_settings
    bars = sample_bars("SPX")
    keys = list(publish_champions(settings, "SPX"))
    await seed_bars(session_factory, "SPX", bars.iloc[:SEED_BARS])
    stream = alerts_for("SPX", bars.iloc[SEED_BARS : SEED_BARS + 300])
    log = tmp_path / "consumer.log"

    first = start_consumer(settings, log)
    assert await eventually(lambda: ready(log, 1), within=180), log.read_text()[-3000:]
    producing = asyncio.create_task(trickle(settings, stream))

    async def some_stored() -> bool:
        return len(await signal_rows(session_factory)) >= 30

    assert await eventually(some_stored, within=120), log.read_text()[-3000:]
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=30) == -signal.SIGKILL
    stored_at_kill = len(await signal_rows(session_factory))
    await producing

    second = start_consumer(settings, log)
    try:
        assert await eventually(lambda: ready(log, 2), within=180), log.read_text()[-3000:]

        async def all_stored() -> bool:
            return len(await signal_rows(session_factory)) >= len(stream) * len(keys)

        assert await eventually(all_stored, within=180), log.read_text()[-3000:]
    finally:
        second.send_signal(signal.SIGTERM)
        code = second.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]  # a clean shutdown on SIGTERM
    assert stored_at_kill < len(stream) * len(keys)  # the kill was mid-stream

    rows = await signal_rows(session_factory)
    assert_one_signal_per_alert_and_model([(r.alert_id, r.model_key) for r in rows], stream, keys)
    assert await count_rows(session_factory, Bar) == SEED_BARS + len(stream)
    values = await read_topic(
        settings.bootstrap,
        settings.topics.signals,
        until=lambda v: len({s.signal_id for s in signals_of(v)}) >= len(stream) * len(keys),
    )
    # on the topic: at least once, each alert and model under one signal id
    on_topic = {(s.alert_id, s.model_key): s.signal_id for s in signals_of(values)}
    assert set(on_topic) == {(a.alert_id, k) for a in stream for k in keys}
    assert len(set(on_topic.values())) == len(stream) * len(keys)


async def test_a_consumer_leaving_the_group_mid_stream_loses_and_doubles_nothing(
    kafka_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    settings = kafka_settings
    bars = sample_bars("SPX")
    symbols = ["SPX", "NDX", "AAA", "BBB", "CCC", "DDD"]
    keys: list[str] = []
    for symbol in symbols:
        keys += publish_champions(
            settings, symbol, lines=[("direction", "logreg")], train=bars.iloc[:800]
        )
        await seed_bars(session_factory, symbol, bars.iloc[:SEED_BARS])
    streams = {s: alerts_for(s, bars.iloc[SEED_BARS : SEED_BARS + 60]) for s in symbols}
    interleaved = [streams[s][i] for i in range(60) for s in symbols]

    async with running_consumer(settings, outcomes=False) as stays:
        leaving = running_consumer(settings, outcomes=False)
        await leaving.__aenter__()
        producing = asyncio.create_task(trickle(settings, interleaved, chunk=12))

        async def some_stored() -> bool:
            return len(await signal_rows(session_factory)) >= 60

        assert await eventually(some_stored, within=120)
        await leaving.__aexit__(None, None, None)
        await producing

        async def all_stored() -> bool:
            return len(await signal_rows(session_factory)) >= len(interleaved)

        assert await eventually(all_stored, within=180)
        assert stays.service.windows is not None

    rows = await signal_rows(session_factory)
    by_symbol = {k.split("-")[0]: k for k in keys}
    expected = Counter((a.alert_id, by_symbol[a.symbol]) for a in interleaved)
    assert Counter((r.alert_id, r.model_key) for r in rows) == expected
    assert await count_rows(session_factory, Bar) == len(symbols) * (SEED_BARS + 60)


async def test_a_broker_restart_mid_stream_loses_and_doubles_nothing(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """The broker itself stops while batches are between storage and acknowledgement (the
    pipelined commit), and comes back: every alert still ends with exactly one signal per model
    in the database and its signals on the topic."""
    broker = local_test_broker(tmp_path / "kafka")
    await kafka_local.start(broker)
    try:
        configured = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
        await ensure_topics(configured)
        bars = sample_bars("SPX")
        keys = list(publish_champions(configured, "SPX"))
        await seed_bars(session_factory, "SPX", bars.iloc[:SEED_BARS])
        stream = alerts_for("SPX", bars.iloc[SEED_BARS : SEED_BARS + 200])
        async with running_consumer(configured, outcomes=False):
            # the producer keeps sending through the outage (its sends wait for the broker)
            producing = asyncio.create_task(trickle(configured, stream))

            async def some_stored() -> bool:
                return len(await signal_rows(session_factory)) >= 30

            assert await eventually(some_stored, within=120)
            await asyncio.to_thread(kafka_local.stop, broker)
            stored_at_stop = len(await signal_rows(session_factory))
            await asyncio.sleep(2.0)
            await kafka_local.start(broker)
            await producing

            async def all_stored() -> bool:
                return len(await signal_rows(session_factory)) >= len(stream) * len(keys)

            assert await eventually(all_stored, within=180)
        assert stored_at_stop < len(stream) * len(keys)  # the broker went away mid-stream

        rows = await signal_rows(session_factory)
        assert_one_signal_per_alert_and_model(
            [(r.alert_id, r.model_key) for r in rows], stream, keys
        )
        values = await read_topic(
            configured.bootstrap,
            configured.topics.signals,
            until=lambda v: len({s.signal_id for s in signals_of(v)}) >= len(stream) * len(keys),
            within=120,
        )
        on_topic = {(s.alert_id, s.model_key) for s in signals_of(values)}
        assert on_topic == {(a.alert_id, k) for a in stream for k in keys}
    finally:
        await asyncio.to_thread(kafka_local.stop, broker)
