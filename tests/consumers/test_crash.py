"""At-least-once delivery + idempotent storage = exactly one signal per alert and model, even when a
consumer process is killed mid-stream or a consumer leaves the group mid-stream."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
from collections import Counter, defaultdict
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Alert, Settings, Signal
from bot.kafka import ensure_topics
from bot.kafka import local as kafka_local
from bot.kafka.admin import admin_client
from consumers.app import inference_group
from consumers.runner import running_consumer
from storage.tables import Bar
from tests.support.consumer import (
    SEED_BARS,
    alerts_for,
    count_rows,
    eventually,
    group_partitions,
    interleaved_symbols,
    publish_champions,
    read_topic,
    sample_bars,
    seed_bars,
    signal_rows,
    signals_of,
)
from tests.support.kafka import local_test_broker
from tests.support.postgres import both_stores
from tests.support.processes import free_port, ready, scraped, start_consumer, trickle

pytestmark = [pytest.mark.kafka, pytest.mark.slow, both_stores]


async def committed_alerts(settings: Settings) -> int:
    """Alert records the inference group has committed (all partitions)."""
    async with admin_client(settings.bootstrap) as admin:
        offsets = await admin.list_consumer_group_offsets(inference_group(settings))
    return sum(
        meta.offset
        for tp, meta in offsets.items()
        if tp.topic == settings.topics.alerts and meta.offset > 0
    )


async def stored_alerts(session_factory: async_sessionmaker[AsyncSession]) -> int:
    return len({r.alert_id for r in await signal_rows(session_factory)})


def assert_one_signal_per_alert_and_model(
    rows: list[tuple[str, str]], alerts: list[Alert], keys: list[str]
) -> None:
    counts = Counter(rows)
    assert set(counts) == {(a.alert_id, k) for a in alerts for k in keys}
    assert set(counts.values()) == {1}


def assert_one_signal_id_per_alert_and_model(
    signals: list[Signal], alerts: list[Alert], keys: list[str]
) -> None:
    """On the topic (at least once): every pair present, and every copy under the same id."""
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for s in signals:
        ids[(s.alert_id, s.model_key)].add(s.signal_id)
    assert set(ids) == {(a.alert_id, k) for a in alerts for k in keys}
    doubled = {pair: found for pair, found in ids.items() if len(found) > 1}
    assert doubled == {}


KILLS = 4  # consumer processes killed at most before one dies with stored, uncommitted batches
FREEZES = 300  # per process: SIGSTOP, measure, SIGCONT, until one falls between store and commit


async def freeze_between_store_and_commit(
    process: subprocess.Popen[bytes],
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
) -> int:
    """Freeze the consumer (SIGSTOP) at random moments until it is frozen with alerts stored but
    their offsets not committed, measured while it is frozen, so the claim holds at the moment of
    the SIGKILL that follows. Returns that count, or 0 (the process left running) if no freeze
    fell in the window."""
    for _ in range(FREEZES):
        process.send_signal(signal.SIGSTOP)
        try:
            uncommitted = await stored_alerts(session_factory) - await committed_alerts(settings)
            if uncommitted > 0:
                process.send_signal(signal.SIGKILL)
                return uncommitted
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
        await asyncio.sleep(random.uniform(0.0, 0.05))
    return 0


@pytest.mark.timeout(1200)  # up to KILLS + 1 starts (180 s each) and the waits below
async def test_sigkill_mid_stream_then_restart_gives_exactly_one_signal_per_alert_and_model(
    kafka_settings: Settings, session_factory: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """A consumer is SIGKILLed mid-stream while it has batches stored but not committed (measured
    while it is frozen, just before the kill: stored alerts > committed offsets). The next process
    gets those records again: its redelivery counter shows it, and nothing is lost or doubled."""
    settings = kafka_settings
    bars = sample_bars("SPX")
    keys = list(publish_champions(settings, "SPX"))
    await seed_bars(session_factory, "SPX", bars.iloc[:SEED_BARS])
    planned = alerts_for("SPX", bars.iloc[SEED_BARS : SEED_BARS + 3000])
    log = tmp_path / "consumer.log"
    # the stream flows until the kill, however slowly the consumers start: it lands mid-stream
    stop = asyncio.Event()
    producing = asyncio.create_task(trickle(settings, planned, chunk=3, pause=0.25, stop=stop))
    uncommitted, starts = 0, 0
    for _ in range(KILLS):
        stored_before = await stored_alerts(session_factory)
        process = start_consumer(settings, log)
        starts += 1
        try:
            assert await eventually(lambda n=starts: ready(log, n), within=180), log.read_text()[
                -3000:
            ]

            async def progressed(floor: int = stored_before) -> bool:
                return await stored_alerts(session_factory) >= floor + 10

            assert await eventually(progressed, within=120), log.read_text()[-3000:]
            assert not producing.done(), "the stream ended before the kill: make it longer"
            uncommitted = await freeze_between_store_and_commit(process, settings, session_factory)
        finally:
            if process.poll() is None:
                process.kill()
            assert process.wait(timeout=30) == -signal.SIGKILL
        if uncommitted > 0:
            break
    stop.set()
    stream = planned[: await producing]
    assert uncommitted > 0, f"none of {KILLS} kills fell between a store and its commit"

    port = free_port()
    last = start_consumer(settings, log, metrics_port=port)
    try:
        assert await eventually(lambda: ready(log, starts + 1), within=180), log.read_text()[-3000:]

        async def all_stored() -> bool:
            return len(await signal_rows(session_factory)) >= len(stream) * len(keys)

        assert await eventually(all_stored, within=180), log.read_text()[-3000:]

        async def counted() -> bool:  # the counter moves once the batch is published, after storage
            found = await scraped(port, "itff_consumer_signals_total", redelivered="true")
            return found >= uncommitted * len(keys)

        await eventually(counted, within=60)
        redelivered = await scraped(port, "itff_consumer_signals_total", redelivered="true")
    finally:
        last.send_signal(signal.SIGTERM)
        code = last.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]  # a clean shutdown on SIGTERM
    # each stored but uncommitted alert came again and was answered from storage
    assert redelivered >= uncommitted * len(keys) > 0
    print(f"SIGKILL test: {starts} kill(s), {uncommitted} stored alerts uncommitted, "
          f"{redelivered:.0f} redelivered signals re-published")  # fmt: skip

    rows = await signal_rows(session_factory)
    assert_one_signal_per_alert_and_model([(r.alert_id, r.model_key) for r in rows], stream, keys)
    assert await count_rows(session_factory, Bar) == SEED_BARS + len(stream)
    values = await read_topic(
        settings.bootstrap,
        settings.topics.signals,
        until=lambda v: len({s.signal_id for s in signals_of(v)}) >= len(stream) * len(keys),
    )
    assert_one_signal_id_per_alert_and_model(signals_of(values), stream, keys)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("leave", ["graceful", "sigkill"])
async def test_a_consumer_leaving_the_group_mid_stream_loses_and_doubles_nothing(
    kafka_settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    leave: str,
) -> None:
    """Two consumers share the partitions; one leaves mid-stream (closing, or SIGKILLed and
    evicted when its session times out) and the broker moves its partitions to the other."""
    settings = kafka_settings
    symbols = ["SPX", "NDX", "AAA", "BBB", "CCC", "DDD"]
    keys, interleaved = await interleaved_symbols(settings, session_factory, symbols, 60)
    log = tmp_path / "leaving.log"

    async with running_consumer(settings, outcomes=False), AsyncExitStack() as leaving:
        if leave == "graceful":
            await leaving.enter_async_context(running_consumer(settings, outcomes=False))
        else:
            process = start_consumer(settings, log)
            leaving.callback(lambda: process.poll() is None and process.kill())
            assert await eventually(lambda: ready(log, 1), within=180), log.read_text()[-3000:]

        async def both_own_partitions() -> bool:
            members = await group_partitions(settings)
            return len(members) == 2 and all(members.values())

        assert await eventually(both_own_partitions, within=120)
        producing = asyncio.create_task(trickle(settings, interleaved, chunk=12))

        async def some_stored() -> bool:
            return len(await signal_rows(session_factory)) >= 60

        assert await eventually(some_stored, within=120)
        before = await group_partitions(settings)  # measured as it leaves
        if leave == "graceful":
            await leaving.aclose()
        else:
            process.send_signal(signal.SIGKILL)
            assert process.wait(timeout=30) == -signal.SIGKILL
        stored_at_leave = len(await signal_rows(session_factory))
        assert stored_at_leave < len(interleaved)  # it left mid-stream

        async def one_owns_all() -> bool:
            members = await group_partitions(settings)
            return [set(range(settings.alerts_partitions))] == list(members.values())

        assert await eventually(one_owns_all, within=120)
        [(survivor, owned)] = (await group_partitions(settings)).items()
        [left] = set(before) - {survivor}
        assert before[left]  # the leaving consumer owned partitions ...
        assert owned - before[survivor] == before[left]  # ... and they moved to the survivor
        await producing

        async def all_stored() -> bool:
            return len(await signal_rows(session_factory)) >= len(interleaved)

        assert await eventually(all_stored, within=180)

    rows = await signal_rows(session_factory)
    by_symbol = {k.split("-")[0]: k for k in keys}
    expected = Counter((a.alert_id, by_symbol[a.symbol]) for a in interleaved)
    assert Counter((r.alert_id, r.model_key) for r in rows) == expected
    assert await count_rows(session_factory, Bar) == len(symbols) * (SEED_BARS + 60)


@pytest.mark.timeout(1000)  # two broker starts (180 s each) + the waits below (120 + 180 + 120 s)
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
