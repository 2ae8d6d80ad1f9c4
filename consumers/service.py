"""One batch of alert records -> bars and signals stored in one transaction -> what to publish.

Order of a batch (the FastStream handler commits the offsets only after `process` returned and the
returned signals and dead letters were acknowledged by Kafka):

1. decode every record (undecodable or invalid -> dead letter);
2. read the windows not yet in memory (rarely: see `consumers.windows`) and, for alerts older
   than their window, the stored history of the group's span (one query per group);
3. in a worker thread: apply the bars in offset order, features, one `predict_windows` per model;
   every alert with enough history is predicted point-in-time, whatever the kind of its bar;
4. write, one transaction: upsert every bar (with or without a model), insert the signals
   (`ON CONFLICT DO NOTHING` on alert_id + model_key), and look up the stored signals of alerts
   that already had them (a redelivery: what was stored the first time is kept);
5. return the signals to publish: the new ones and, for a redelivered alert, the stored ones.

If anything raises, nothing is stored (one transaction), the touched windows are dropped (re-read
from the database next time) and `process` raises `consumers.failures.ProcessingFailed` naming the
stage (decode, read, features, predict, write). The handler then tells (`is_transient`):

- a transient failure (database busy, Kafka, a timeout): the batch is rewound and retried with
  backoff; nothing is committed, nothing is lost;
- a deterministic one (caused by a record): `isolate` processes the batch in halves, down to the
  records that fail alone; each becomes a `processing_failed` dead letter naming its stage, and
  the others are stored and published as usual. A poison record is never stored, so its bar never
  enters a window: the good alerts of its symbol after it are predicted on the stored bars.
  Storage is idempotent, so the halves stored again after a failed attempt double nothing.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from bot.contracts import Alert, DeadLetter, Signal
from bot.contracts.bars import BarTimeBounds, canonical_interval
from bot.core import WARMUP_BARS
from bot.runtime import get_logger
from consumers import telemetry
from consumers.deadletters import Reason, RecordRef, dead_letter, decode_alert, processing_failed
from consumers.failures import describe, is_transient, stage
from consumers.inference import (
    GroupInput,
    GroupResult,
    Item,
    ModelSpec,
    PredictWindows,
    infer_batch,
)
from consumers.windows import (
    BarArrays,
    BarWindows,
    WindowKey,
    covered_after,
    with_history,
)
from storage.bars import (
    BarRecord,
    StoredBar,
    bar_record,
    bars_for_span,
    latest_bar_time,
    recent_bars,
    record_revisions,
    record_revisions_sync,
    stored_bar,
    upsert_bars,
    upsert_bars_sync,
    values_of,
    verdict,
)
from storage.signals import (
    insert_signals,
    insert_signals_sync,
    signals_for_alerts,
    signals_for_alerts_sync,
)

log = get_logger(__name__)

ChampionSpecs = Callable[[str], Sequence[ModelSpec]]


def window_size(lookback: int) -> int:
    """Bars a window keeps: the features' warm-up plus the longest lookback of the models."""
    return WARMUP_BARS + lookback


@dataclass(slots=True)
class BatchResult:
    signals: list[Signal] = field(default_factory=list)
    redelivered: list[Signal] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    alerts: int = 0

    def add(self, other: BatchResult) -> None:
        self.signals += other.signals
        self.redelivered += other.redelivered
        self.dead_letters += other.dead_letters
        self.alerts += other.alerts


@dataclass(slots=True)
class _Plan:
    groups: dict[WindowKey, list[Item]]
    specs: dict[WindowKey, list[ModelSpec]]
    # the window, with the stored history of old alerts joined in; taken at read time (a
    # rebalance may drop the windows meanwhile)
    history: dict[WindowKey, BarArrays]
    size: int
    # revised bars with the values they replace (recorded in the batch's transaction)
    revisions: list[tuple[BarRecord, StoredBar]] = field(default_factory=list)


class InferenceService:
    """Turns batches of alert records into stored bars and signals. One per consumer process."""

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        champion_specs: ChampionSpecs,
        predict: PredictWindows,
        lookback: int = 1,
        sync_sessions: sessionmaker[Session] | None = None,
        bounds: BarTimeBounds | None = None,
        revision_window: int = 3,
        write_lock: asyncio.Lock | None = None,
    ) -> None:
        self._session_factory = session_factory
        # taken around a batch's write; the outcome worker takes it around each of its writing
        # transactions (`consumers.outcomes.OutcomeWorker`)
        self._write_lock = write_lock or asyncio.Lock()
        self._bounds = bounds
        self._revision_window = revision_window
        # per (symbol, interval): the newest stored bar time, so that an alert for a newer bar
        # (the live case) needs no read to know it rewrites nothing
        self._latest: dict[WindowKey, datetime | None] = {}
        # SQLite: the batch's write in the inference thread, one hop (aiosqlite: one per call)
        self._sync_sessions = sync_sessions
        self._champion_specs = champion_specs
        self._predict = predict
        self.windows = BarWindows(window_size(lookback))
        # after each batch: per symbol stored, its oldest bar (the outcome worker's bound)
        self.on_stored: Callable[[Mapping[str, datetime]], None] | None = None
        # partitions moved (windows are re-read; other consumers may have stored signals)
        self.on_rebalanced: Callable[[], None] | None = None
        self.on_close: Callable[[], Awaitable[None]] | None = None  # the emitter's producer
        # before the subscriber stops: the batch in flight is acknowledged and committed
        self.on_stopping: Callable[[], Awaitable[None]] | None = None

    def rebalanced(self) -> None:
        self.windows.invalidate()
        self._latest.clear()
        if self.on_rebalanced is not None:
            self.on_rebalanced()

    async def stopping(self) -> None:
        if self.on_stopping is not None:
            await self.on_stopping()

    async def close(self) -> None:
        if self.on_close is not None:
            await self.on_close()

    async def process(self, refs: Sequence[RecordRef]) -> BatchResult:
        """Store one batch and return what to publish; raises `ProcessingFailed` (nothing
        stored)."""
        result = BatchResult()
        with stage("decode"):
            items = self._decode(refs, result)
        result.alerts = len(items)
        if not items:
            return result
        with stage("read"):
            groups = _group(items)
        try:
            started = time.perf_counter()
            with stage("read"):
                revisions = await self._screen(groups, result)
                plan = await self._read(groups)
                plan.revisions = revisions
            telemetry.STAGE_READ.observe(time.perf_counter() - started)
            if self._sync_sessions is None:
                outcomes = await asyncio.to_thread(self._infer_all, plan)
                async with self._write_lock:
                    written = await self._write(plan, outcomes)
            else:  # inference and write in one thread hop: the lock covers both (~1 ms more)
                async with self._write_lock:
                    outcomes, written = await asyncio.to_thread(self._infer_and_write, plan)
            with stage("write"):
                _publishable(plan, outcomes, written, result)
        except BaseException:
            self.windows.invalidate(list(groups))
            for key in groups:
                self._latest.pop(key, None)
            raise
        for key, outcome in outcomes.items():
            self.windows.put(key, outcome.window)
        self._stored_up_to(groups)
        telemetry.BAR_REVISIONS.inc(len(revisions))
        if self.on_stored is not None:
            self.on_stored(_oldest_bars(groups))
        return result

    async def isolate(self, refs: Sequence[RecordRef], error: Exception) -> BatchResult:
        """The batch `refs`, whose processing failed deterministically with `error`, processed
        in halves (in offset order) down to the records that fail alone: each of those becomes a
        `processing_failed` dead letter; the rest is stored and returned as `process` returns it.
        Runs only after a failure, so the batch path's cost is unchanged. A transient failure on
        the way is raised: the caller rewinds the whole batch (what was stored is idempotent)."""
        log.warning(
            "batch failed on a record; isolating the records that fail",
            records=len(refs),
            error=describe(error),
        )
        result = BatchResult()
        await self._halves(refs, error, result)
        return result

    async def _halves(
        self, refs: Sequence[RecordRef], error: Exception, result: BatchResult
    ) -> None:
        if len(refs) == 1:
            result.dead_letters.append(processing_failed(refs[0], error))
            return
        middle = len(refs) // 2
        for half in (refs[:middle], refs[middle:]):
            try:
                result.add(await self.process(half))
            except Exception as failed:
                if is_transient(failed):
                    raise
                await self._halves(half, failed, result)

    def _decode(self, refs: Sequence[RecordRef], result: BatchResult) -> list[Item]:
        items: list[Item] = []
        for ref in refs:
            decoded = decode_alert(ref)
            if not isinstance(decoded, Alert):
                result.dead_letters.append(decoded)
                continue
            problem = self._bounds and self._bounds.violation(
                decoded.bar_time, decoded.interval, decoded.received_at
            )
            if problem:
                result.dead_letters.append(dead_letter(ref, Reason.OUT_OF_RANGE, problem))
                continue
            items.append(Item(ref, decoded))
        return items

    async def _screen(
        self, groups: dict[WindowKey, list[Item]], result: BatchResult
    ) -> list[tuple[BarRecord, StoredBar]]:
        """History is not rewritten (`storage.bars.verdict`): an alert that changes a stored bar
        older than the revision window is taken out of its group and dead-lettered
        (`revision_refused`); one within it is kept and returned, with the values it replaces,
        to be recorded in `bar_revisions`. An alert newer than the newest stored bar of its key
        (the live case) is new without a read; one read per key the first time it is seen."""
        revisions: list[tuple[BarRecord, StoredBar]] = []
        session: AsyncSession | None = None
        try:
            for key, items in groups.items():
                if key not in self._latest:
                    session = session or self._session_factory()
                    self._latest[key] = await latest_bar_time(
                        session=session, symbol=key[0], interval=key[1]
                    )
                latest = self._latest[key]
                if latest is None or all(item.alert.bar_time > latest for item in items):
                    continue
                session = session or self._session_factory()
                groups[key] = await self._judge(session, items, revisions, result)
        finally:
            if session is not None:
                await session.close()
        for key in [key for key, items in groups.items() if not items]:
            del groups[key]
        return revisions

    async def _judge(
        self,
        session: AsyncSession,
        items: list[Item],
        revisions: list[tuple[BarRecord, StoredBar]],
        result: BatchResult,
    ) -> list[Item]:
        """The items of one key that may be stored, in offset order (see `_screen`)."""
        window = self._revision_window
        seen: dict[datetime, StoredBar | None] = {}  # the bar as the earlier items left it
        kept: list[Item] = []
        for item in items:
            bar = bar_record(item.alert)
            if bar.time not in seen:
                seen[bar.time] = await stored_bar(session=session, key=bar.key, window=window)
            before = seen[bar.time]
            judged = verdict(bar, before, window)
            if judged == "refused":
                error = (
                    f"{bar.symbol} {bar.interval} {bar.time.isoformat()} is stored with other "
                    f"values and is not among its last {window} bars (ITFF_REVISION_WINDOW_BARS): "
                    "history is not rewritten"
                )
                result.dead_letters.append(dead_letter(item.ref, Reason.REVISION_REFUSED, error))
                continue
            if judged == "revision" and before is not None:
                revisions.append((bar, before))
            later = before.later if before is not None else 0
            seen[bar.time] = StoredBar(values_of(bar), bar.source, later)
            kept.append(item)
        return kept

    def _stored_up_to(self, groups: dict[WindowKey, list[Item]]) -> None:
        for key, items in groups.items():
            if key in self._latest:
                newest = max(item.alert.bar_time for item in items)
                latest = self._latest[key]
                self._latest[key] = newest if latest is None else max(latest, newest)

    def _specs(self, key: WindowKey) -> list[ModelSpec]:
        symbol, interval = key
        specs = [s for s in self._champion_specs(symbol) if s.interval == interval]
        self.windows.ensure_size(window_size(max((s.lookback for s in specs), default=1)))
        return specs

    async def _read(self, groups: dict[WindowKey, list[Item]]) -> _Plan:
        specs = {key: self._specs(key) for key in groups}
        size = self.windows.size
        history: dict[WindowKey, BarArrays] = {}
        missing: list[WindowKey] = []
        for key in (key for key in groups if specs[key]):
            window = self.windows.get(key)
            if window is None:
                missing.append(key)
            else:
                history[key] = window
        old = {key: _old_times(groups[key], history[key], size) for key in history}
        if missing or any(old.values()):
            async with self._session_factory() as session:
                for symbol, interval in missing:  # a first sight, a rebalance, an error, a minute
                    recent = await recent_bars(
                        session=session, symbol=symbol, interval=interval, limit=size
                    )
                    seeded = self.windows.seed((symbol, interval), recent)
                    history[(symbol, interval)] = seeded
                    old[(symbol, interval)] = _old_times(groups[(symbol, interval)], seeded, size)
                for (symbol, interval), times in old.items():
                    if times:  # alerts older than the window: their history, one query
                        stored = await bars_for_span(
                            session=session,
                            symbol=symbol,
                            interval=interval,
                            first=min(times),
                            last=max(times),
                            count=size,
                        )
                        key = (symbol, interval)
                        history[key] = with_history(history[key], stored)
        return _Plan(groups=groups, specs=specs, history=history, size=size)

    def _infer_all(self, plan: _Plan) -> dict[WindowKey, GroupResult]:
        began = time.perf_counter()
        groups = {
            key: GroupInput(plan.history[key], items, plan.specs[key])
            for key, items in plan.groups.items()
            if key in plan.history
        }
        outcomes: dict[WindowKey, GroupResult] = {}
        if groups:
            with stage("features"):  # `infer_batch` names the predict stage itself
                outcomes = infer_batch(groups, self._predict, size=plan.size)
            telemetry.INFERENCE_LATENCY.observe(time.perf_counter() - began)
        telemetry.STAGE_INFER.observe(time.perf_counter() - began)
        return outcomes

    def _infer_and_write(self, plan: _Plan) -> tuple[dict[WindowKey, GroupResult], _Written]:
        outcomes = self._infer_all(plan)
        return outcomes, self._write_sync(plan, outcomes)

    async def _write(self, plan: _Plan, outcomes: dict[WindowKey, GroupResult]) -> _Written:
        """Bars and new signals in one transaction; a redelivered alert gets its stored signals.

        A signal that already existed (the alert was delivered before) is not stored again: the
        alert's stored signals are looked up, so that what was stored the first time is
        published again, with the same `signal_id`.
        """
        fresh, horizons = _fresh(outcomes)
        started = time.perf_counter()
        with stage("write"):
            async with self._session_factory() as session, session.begin():
                await upsert_bars(session=session, bars=_bar_records(plan.groups))
                await record_revisions(session=session, revisions=plan.revisions)
                inserted = await insert_signals(session=session, signals=fresh, horizons=horizons)
                again = {s.alert_id for s in fresh if s.signal_id not in inserted}
                stored = await signals_for_alerts(session=session, alert_ids=sorted(again))
        telemetry.STAGE_WRITE.observe(time.perf_counter() - started)
        return _Written(fresh, inserted, stored)

    def _write_sync(self, plan: _Plan, outcomes: dict[WindowKey, GroupResult]) -> _Written:
        """`_write` on a synchronous session, in the worker thread."""
        assert self._sync_sessions is not None
        fresh, horizons = _fresh(outcomes)
        started = time.perf_counter()
        with stage("write"), self._sync_sessions() as session, session.begin():
            upsert_bars_sync(session=session, bars=_bar_records(plan.groups))
            record_revisions_sync(session=session, revisions=plan.revisions)
            inserted = insert_signals_sync(session=session, signals=fresh, horizons=horizons)
            again = {s.alert_id for s in fresh if s.signal_id not in inserted}
            stored = signals_for_alerts_sync(session=session, alert_ids=sorted(again))
        telemetry.STAGE_WRITE.observe(time.perf_counter() - started)
        return _Written(fresh, inserted, stored)


def _oldest_bars(groups: dict[WindowKey, list[Item]]) -> dict[str, datetime]:
    oldest: dict[str, datetime] = {}
    for (symbol, _), items in groups.items():
        first = min(item.alert.bar_time for item in items)
        oldest[symbol] = min(oldest.get(symbol, first), first)
    return oldest


@dataclass(frozen=True, slots=True)
class _Written:
    fresh: list[Signal]  # the batch's signals
    inserted: set[str]  # signal ids stored by this batch
    stored: list[Signal]  # signals stored before for alerts of this batch (redeliveries)


def _fresh(outcomes: dict[WindowKey, GroupResult]) -> tuple[list[Signal], dict[str, int]]:
    fresh = [signal for outcome in outcomes.values() for signal in outcome.signals]
    horizons = {k: v for outcome in outcomes.values() for k, v in outcome.horizons.items()}
    return fresh, horizons


def _publishable(
    plan: _Plan, outcomes: dict[WindowKey, GroupResult], written: _Written, result: BatchResult
) -> None:
    result.signals = [s for s in written.fresh if s.signal_id in written.inserted]
    result.redelivered = [s for s in written.stored if s.signal_id not in written.inserted]
    _route_dead_letters(plan, outcomes, result)


def _old_times(items: Sequence[Item], window: BarArrays, size: int) -> list[pd.Timestamp]:
    """Bar times of the alerts whose history reaches back before the window."""
    edge = covered_after(window, size)
    if edge is None:
        return []
    return [pd.Timestamp(item.alert.bar_time) for item in items if item.alert.bar_time <= edge]


def _group(items: Sequence[Item]) -> dict[WindowKey, list[Item]]:
    """Items by (symbol, canonical interval), each group in offset order."""
    groups: dict[WindowKey, list[Item]] = {}
    for item in items:
        interval = canonical_interval(item.alert.interval)
        alert = item.alert
        if interval != alert.interval:
            alert = alert.model_copy(update={"interval": interval})
        groups.setdefault((alert.symbol, interval), []).append(Item(item.ref, alert))
    return groups


def _bar_records(groups: dict[WindowKey, list[Item]]) -> list[BarRecord]:
    return [bar_record(item.alert) for items in groups.values() for item in items]


def _route_dead_letters(
    plan: _Plan, outcomes: dict[WindowKey, GroupResult], result: BatchResult
) -> None:
    for key, items in plan.groups.items():
        outcome = outcomes.get(key)
        if outcome is None:
            error = f"no champion model for {key[0]} at interval {key[1]}; the bar was stored"
            result.dead_letters.extend(
                dead_letter(item.ref, Reason.NO_MODEL, error) for item in items
            )
            continue
        result.dead_letters.extend(outcome.dead_letters)
        for kind, count in collections.Counter(outcome.kinds).items():
            telemetry.BARS.labels(kind=kind.value).inc(count)
