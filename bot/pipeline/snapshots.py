"""Live-metric snapshots: one `live_metrics` row per model and window (7d, 30d, all).

Run by the consumers' outcome worker soon after new outcomes and by the scheduler's `live-metrics`
job. A snapshot first folds the outcomes stored since the last one into the running aggregates
(`live_aggregates`: a segment per model and UTC day, and one for all time; O(1) per outcome,
`bot.core.live_aggregates`), then reads the aggregates of the last 31 days: its cost follows the
new outcomes and the number of models, not the history. The aggregates are in the database, so a
restart goes on from them. `rebuild_live_metrics` (`itff metrics rebuild`) recounts every stored
outcome, as the snapshots did before, and so does a snapshot given another cost than the one the
aggregates were built with.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import utcnow
from bot.core.live_aggregates import (
    ModelAggregates,
    Segment,
    bucket_name,
    day_of,
    fold,
    segment_of,
    window_metrics,
)
from bot.core.live_scores import WINDOWS
from bot.runtime import get_logger
from storage import live_aggregates as repo
from storage.db import write_transaction
from storage.signals import ResolvedSignal, insert_live_metrics

log = get_logger(__name__)
# outcomes folded per transaction: about 30 ms of a replay's fold (each outcome a day of its own,
# the costliest case), so a consumer's batch waits at most that long for one (`write_lock`)
CHUNK = 250
LONGEST = max(span for _, span in WINDOWS if span is not None)


def _segment(rows: Sequence[ResolvedSignal], cost_bps: float) -> Segment:
    """The segment of one model's resolved signals, in bar order."""
    return segment_of(
        bar_times=[row.bar_time for row in rows],
        target=rows[0].target,
        predictions=[row.prediction for row in rows],
        actions=[row.action for row in rows],
        realised_returns=[row.realised_return for row in rows],
        strategy_returns=[row.strategy_return for row in rows],
        cost_bps=cost_bps,
    )


def _segments(rows: Sequence[repo.AggregateRow]) -> dict[str, Segment]:
    return {row.bucket: Segment.from_json(row.segment) for row in rows}


async def _fold_model(
    session: AsyncSession, key: str, rows: list[ResolvedSignal], cost_bps: float
) -> list[repo.AggregateRow]:
    """Count one model's new resolved signals (bar order) into its buckets; the rows to save."""
    days = {day_of(row.bar_time) for row in rows}
    names = [bucket_name(day) for day in days]
    stored = _segments(await repo.buckets(session=session, model_key=key, names=[*names, repo.ALL]))
    model = ModelAggregates(
        target=rows[0].target,
        interval=rows[0].interval,
        days={day: stored[bucket_name(day)] for day in days if bucket_name(day) in stored},
        total=stored.get(repo.ALL),
    )
    by_day: dict[datetime, list[ResolvedSignal]] = {}
    for row in rows:  # in bar order
        by_day.setdefault(day_of(row.bar_time), []).append(row)
    for day_rows in by_day.values():  # each day's new signals in one step, over arrays
        model.add(_segment(day_rows, cost_bps), cost_bps=cost_bps)
    for day in model.dirty:  # a bar older than its bucket's last: that day from its rows
        counted = await repo.aggregated_between(
            session=session, model_key=key, start=day, end=day + timedelta(days=1)
        )
        if counted:  # the day's rows include these new ones, already marked
            model.days[day] = _segment(counted, cost_bps)
    if model.total is None:  # a bar older than the all-time segment's last: refold the days
        every = _segments(await repo.buckets(session=session, model_key=key))
        every.pop(repo.ALL, None)
        every.update({bucket_name(day): segment for day, segment in model.days.items()})
        model.total = fold((every[name] for name in sorted(every)), cost_bps=cost_bps)
    chosen = {bucket_name(day): model.days[day] for day in days}
    if model.total is not None:  # always: folded from at least one day
        chosen[repo.ALL] = model.total
    return [
        repo.AggregateRow(key, name, model.target, model.interval, segment.to_json())
        for name, segment in chosen.items()
    ]


async def fold_new_outcomes(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    cost_bps: float,
    write_lock: asyncio.Lock | None = None,
) -> int:
    """Count the outcomes the aggregates do not count yet, `CHUNK` per transaction (each under
    `write_lock` when given); returns how many. Aggregates built with another cost are
    recounted from the stored outcomes."""
    total = 0
    while True:
        async with write_transaction(session_factory, lock=write_lock) as session:
            built = await repo.lock(session=session, cost_bps=cost_bps)
            if built is not None and built != cost_bps:
                log.info("live_aggregates_recount", built_with=built, cost_bps=cost_bps)
                await repo.reset_from_raw(session=session)
                await repo.set_cost(session=session, cost_bps=cost_bps)
            ids, rows = await repo.unaggregated(session=session, limit=CHUNK)
            if not ids:
                return total
            await repo.mark_aggregated(session=session, signal_ids=ids)
            by_model: dict[str, list[ResolvedSignal]] = {}
            for row in rows:
                by_model.setdefault(row.model_key, []).append(row)
            for key, group in by_model.items():
                saved = await _fold_model(session, key, group, cost_bps)
                await repo.save(session=session, rows=saved)
        total += len(ids)


async def snapshot_live_metrics(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    cost_bps: float,
    now: datetime | None = None,
    write_lock: asyncio.Lock | None = None,
) -> int:
    """Write one `live_metrics` row per (model, window: 7d, 30d, all); returns the rows. Each
    transaction that writes is taken under `write_lock` when given (the consumer's, shared with
    its batches)."""
    computed_at = now or utcnow()
    await fold_new_outcomes(
        session_factory=session_factory, cost_bps=cost_bps, write_lock=write_lock
    )
    first = bucket_name(day_of(computed_at - LONGEST))
    async with session_factory() as session:
        rows = await repo.buckets_since(session=session, first=first)
    models: dict[str, ModelAggregates] = {}
    for row in rows:
        model = models.setdefault(
            row.model_key, ModelAggregates(row.target, row.interval, {}, None)
        )
        segment = Segment.from_json(row.segment)
        if row.bucket == repo.ALL:
            model.total = segment
        else:
            model.days[day_of(segment.first_bar)] = segment
    snapshots = window_metrics(models, now=computed_at, cost_bps=cost_bps, windows=WINDOWS)
    async with write_transaction(session_factory, lock=write_lock) as session:
        return await insert_live_metrics(
            session=session, snapshots=snapshots, computed_at=computed_at
        )


async def rebuild_live_metrics(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    cost_bps: float,
    now: datetime | None = None,
) -> int:
    """Recount every stored outcome into the aggregates (days whose rows were archived keep
    their buckets), then snapshot; returns the outcomes counted."""
    started = time.perf_counter()
    async with session_factory() as session, session.begin():
        await repo.lock(session=session, cost_bps=cost_bps)
        await repo.reset_from_raw(session=session)
        await repo.set_cost(session=session, cost_bps=cost_bps)
    counted = await fold_new_outcomes(session_factory=session_factory, cost_bps=cost_bps)
    await snapshot_live_metrics(session_factory=session_factory, cost_bps=cost_bps, now=now)
    log.info("live_metrics_rebuilt", outcomes=counted, seconds=time.perf_counter() - started)
    return counted
