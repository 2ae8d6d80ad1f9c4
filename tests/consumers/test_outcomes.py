"""Outcome resolution and live-metric snapshots on a replayed series of real bars."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Settings
from bot.core import neutral_score
from bot.pipeline import snapshot_live_metrics
from consumers.outcomes import OutcomeWorker, _resolve, resolve_outcomes
from consumers.runner import running_consumer
from storage.tables import LiveMetricSnapshot, Outcome, SignalRow
from tests.support.consumer import (
    SEED_BARS,
    alerts_for,
    eventually,
    produce_alerts,
    publish_champions,
    sample_bars,
    seed_bars,
    signal_rows,
)
from tests.support.postgres import both_stores

pytestmark = [pytest.mark.kafka, both_stores]
STREAM = 30


async def stream_spx(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    lines: list[tuple[str, str]],
) -> list[str]:
    """Champions of `lines` for SPX, the seed bars stored, then `STREAM` real bars through the
    consumer (outcomes not resolved by it) until every signal is stored; returns the keys."""
    bars = sample_bars("SPX")
    keys = list(publish_champions(settings, "SPX", lines=lines))
    await seed_bars(session_factory, "SPX", bars.iloc[:SEED_BARS])
    replay = bars.iloc[SEED_BARS : SEED_BARS + STREAM]
    async with running_consumer(settings, outcomes=False):
        await produce_alerts(settings.bootstrap, settings.topics.alerts, alerts_for("SPX", replay))

        async def stored() -> bool:
            return len(await signal_rows(session_factory)) >= STREAM * len(keys)

        assert await eventually(stored)
    return keys


async def test_replayed_series_resolves_every_signal_whose_horizon_passed(
    kafka_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    settings = kafka_settings
    keys = await stream_spx(
        settings, session_factory, [("direction", "logreg"), ("return", "ridge")]
    )
    bars = sample_bars("SPX")

    resolved = await resolve_outcomes(session_factory=session_factory)
    assert resolved == (STREAM - 1) * len(keys)  # the last bar's next bar is not known yet
    assert await resolve_outcomes(session_factory=session_factory) == 0  # idempotent

    close = bars["close"]
    async with session_factory() as session:
        pairs = (
            await session.execute(
                select(SignalRow, Outcome).join(Outcome, Outcome.signal_id == SignalRow.signal_id)
            )
        ).all()
    assert len(pairs) == (STREAM - 1) * len(keys)
    for signal, outcome in pairs:
        position = close.index.get_loc(signal.bar_time)
        expected = math.log(close.iloc[position + 1] / close.iloc[position])
        assert outcome.realised_return == pytest.approx(expected)
        assert outcome.exit_time == close.index[position + 1]
        up = signal.prediction > neutral_score(signal.target)
        assert outcome.hit == (up == (expected > 0))
        side = {"buy": 1.0, "sell": -1.0, "hold": 0.0}[signal.action]
        one_bar = close.iloc[position + 1] / close.iloc[position] - 1
        assert outcome.strategy_return == pytest.approx(side * one_bar)

    rows = await snapshot_live_metrics(session_factory=session_factory, cost_bps=1.0)
    assert rows == len(keys)  # 2000 is outside the 7d and 30d windows: "all" only
    async with session_factory() as session:
        snapshots = list((await session.execute(select(LiveMetricSnapshot))).scalars())
    for snapshot in snapshots:
        hits = [o.hit for s, o in pairs if s.model_key == snapshot.model_key]
        assert snapshot.window == "all"
        assert snapshot.metrics["signal_count"] == STREAM - 1
        assert snapshot.metrics["accuracy"] == pytest.approx(sum(hits) / len(hits))


async def test_the_worker_snapshots_live_metrics_soon_after_new_outcomes(
    kafka_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """After a replay the dashboard's live columns fill without waiting for the 5-minute snapshot;
    further outcomes within the fresh interval do not snapshot again (debounced)."""
    settings = kafka_settings
    keys = await stream_spx(settings, session_factory, [("direction", "logreg")])
    bars = sample_bars("SPX")

    worker = OutcomeWorker(
        session_factory=session_factory,
        cost_bps=1.0,
        snapshot_every_seconds=3600.0,
        fresh_interval_seconds=3600.0,
        min_interval_seconds=0.05,
    )
    task = asyncio.create_task(worker.run())
    try:

        async def snapshots() -> list[LiveMetricSnapshot]:
            async with session_factory() as session:
                return list((await session.execute(select(LiveMetricSnapshot))).scalars())

        async def outcomes() -> int:
            async with session_factory() as session:
                return len((await session.execute(select(Outcome))).scalars().all())

        assert await snapshots() == []
        worker.mark(["SPX"])

        async def snapshotted() -> bool:
            return len(await snapshots()) == len(keys)

        assert await eventually(snapshotted)  # not after the hour of `snapshot_every_seconds`
        assert (await snapshots())[0].metrics["signal_count"] == STREAM - 1
        assert worker.snapshots == 1

        # the next bar resolves the last signal: within the fresh interval, no second snapshot
        await seed_bars(
            session_factory, "SPX", bars.iloc[SEED_BARS + STREAM : SEED_BARS + STREAM + 1]
        )
        worker.mark(["SPX"])

        async def all_resolved() -> bool:
            return await outcomes() == STREAM * len(keys)

        assert await eventually(all_resolved)
        await asyncio.sleep(0.2)  # past the worker's coalescing pause, where it would snapshot
        assert worker.snapshots == 1
        assert len(await snapshots()) == len(keys)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_worker_reads_pending_signals_from_its_bound_and_whole_when_unsure(
    kafka_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Per symbol the worker reads pending signals from the oldest bar that may be pending on;
    what it cannot know of (signals older than its bound, stored by another consumer before a
    rebalance) is found once it forgets its bounds."""
    settings = kafka_settings
    await stream_spx(settings, session_factory, [("direction", "logreg")])
    bars = sample_bars("SPX")
    last = bars.index[SEED_BARS + STREAM - 1].to_pydatetime()
    worker = OutcomeWorker(session_factory=session_factory, cost_bps=1.0, min_interval_seconds=0.05)
    task = asyncio.create_task(worker.run())

    async def outcomes() -> int:
        async with session_factory() as session:
            return len((await session.execute(select(Outcome))).scalars().all())

    try:
        worker.mark_stored({"SPX": last})  # nothing known yet: the whole table is read
        assert await eventually(lambda: _equals(outcomes, STREAM - 1))

        # five outcomes vanish: pending again, but older than the bound (the last, pending bar)
        async with session_factory() as session, session.begin():
            first = (await session.execute(select(Outcome).limit(5))).scalars().all()
            for outcome in first:
                await session.delete(outcome)
        await seed_bars(
            session_factory, "SPX", bars.iloc[SEED_BARS + STREAM : SEED_BARS + STREAM + 1]
        )
        worker.mark_stored({"SPX": bars.index[SEED_BARS + STREAM].to_pydatetime()})
        assert await eventually(lambda: _equals(outcomes, STREAM - 5))  # only the last bar's
        await asyncio.sleep(0.2)
        assert await outcomes() == STREAM - 5

        worker.forget()  # a rebalance: read whole again
        worker.mark_stored({"SPX": bars.index[SEED_BARS + STREAM].to_pydatetime()})
        assert await eventually(lambda: _equals(outcomes, STREAM))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_worker_writes_under_the_write_lock_and_a_batch_gets_in_between_chunks(
    kafka_settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every statement the outcome worker writes runs under the consumer's write lock; its reads
    run outside it; and a live-metric fold of many outcomes gives the lock up between its
    chunks, so a batch waiting for it gets in before the fold ends."""
    settings = kafka_settings
    await stream_spx(settings, session_factory, [("direction", "logreg"), ("return", "ridge")])
    monkeypatch.setattr("bot.pipeline.snapshots.CHUNK", 5)
    lock = asyncio.Lock()
    seen: list[tuple[str, bool]] = []  # (the statement's verb, or "batch"; the lock held)

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append((statement.split(None, 1)[0].upper(), lock.locked()))

    engine = session_factory.kw["bind"].sync_engine
    event.listen(engine, "before_cursor_execute", record)
    done = asyncio.Event()

    async def batches() -> None:  # a consumer's batches, taking the lock as `process` does
        while not done.is_set():
            async with lock:
                seen.append(("batch", True))
            await asyncio.sleep(0)

    contender = asyncio.create_task(batches())
    try:
        resolved, _ = await _resolve(session_factory, {"SPX": None}, lock)
        assert resolved == 2 * (STREAM - 1)
        await snapshot_live_metrics(session_factory=session_factory, cost_bps=1.0, write_lock=lock)
    finally:
        done.set()
        await contender
        event.remove(engine, "before_cursor_execute", record)

    worker = [(verb, held) for verb, held in seen if verb != "batch"]
    writes = [held for verb, held in worker if verb in {"INSERT", "UPDATE", "DELETE"}]
    assert writes
    assert all(writes), "a write of the worker ran without the lock"
    assert any(verb == "SELECT" and not held for verb, held in worker), "every read was locked"
    verbs = [verb for verb, _ in seen]
    folds = [i for i, (verb, _) in enumerate(seen) if verb == "UPDATE"]  # each chunk's first
    assert len(folds) >= 2 * (STREAM - 1) // 5
    assert "batch" in verbs[folds[0] : folds[-1]], "the fold held the lock from start to end"


async def _equals(count: Callable[[], Awaitable[int]], expected: int) -> bool:
    return await count() == expected
