"""Outcome resolution and live-metric snapshots: derived from the database alone, so idempotent.

`resolve_outcomes` gives every stored signal whose horizon has passed (bar t+h is in `bars`) its
outcome; `snapshot_live_metrics` writes one `live_metrics` row per model and window. Both can run
any number of times: the consumer runs them in the background after its batches and every few
minutes, the scheduler from its periodic job.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core import resolve_all
from bot.pipeline import snapshot_live_metrics
from bot.runtime import get_logger
from consumers import telemetry
from storage.bars import bars_between
from storage.db import write_transaction
from storage.signals import (
    OutcomeRecord,
    PendingSignal,
    insert_outcomes,
    pending_signals,
)

log = get_logger(__name__)


def _outcomes(pending: Sequence[PendingSignal], bars: pd.DataFrame) -> list[OutcomeRecord]:
    resolutions = resolve_all(
        bars,
        bar_times=[signal.bar_time for signal in pending],
        horizons=[signal.horizon for signal in pending],
        targets=[signal.target for signal in pending],
        predictions=[signal.prediction for signal in pending],
        actions=[signal.action for signal in pending],
    )
    found: list[OutcomeRecord] = []
    for signal, resolution in zip(pending, resolutions, strict=True):
        if resolution is not None:
            found.append(
                OutcomeRecord(
                    signal_id=signal.signal_id,
                    model_key=signal.model_key,
                    bar_time=signal.bar_time,
                    exit_time=resolution.exit_time,
                    realised_return=resolution.realised_return,
                    hit=resolution.hit,
                    strategy_return=resolution.strategy_return,
                )
            )
    return found


async def resolve_outcomes(
    *, session_factory: async_sessionmaker[AsyncSession], symbols: Iterable[str] | None = None
) -> int:
    """Resolve every pending signal (of `symbols`, or all) whose exit bar is stored."""
    if symbols is None:
        resolved, _ = await _resolve(session_factory, {None: None})
    else:
        resolved, _ = await _resolve(session_factory, dict.fromkeys(symbols))
    return resolved


async def _resolve(
    session_factory: async_sessionmaker[AsyncSession],
    bounds: Mapping[str | None, datetime | None],
    write_lock: asyncio.Lock | None = None,
) -> tuple[int, dict[str | None, datetime | None]]:
    """Resolve the pending signals of each symbol (None: all) from its bound on (None: all of
    them); returns the outcomes stored and, per symbol, the oldest bar still pending (None when
    none is).

    The reads and the arithmetic come first, outside any write transaction (a WAL reader blocks
    no writer); the outcomes are then stored in one short transaction, under `write_lock` when
    given (the consumer's: its batches wait for this insert, never for the reads). Storing is
    idempotent (an outcome already stored is kept), so a second resolver racing this one does
    no harm."""
    found: list[OutcomeRecord] = []
    still: dict[str | None, datetime | None] = {}
    async with session_factory() as session:
        for symbol in sorted(bounds, key=lambda name: name or ""):
            pending = await pending_signals(session=session, symbol=symbol, since=bounds[symbol])
            groups: dict[tuple[str, str], list[PendingSignal]] = {}
            for signal in pending:
                groups.setdefault((signal.symbol, signal.interval), []).append(signal)
            done: set[str] = set()
            for (name, interval), group in groups.items():
                start = min(signal.bar_time for signal in group)
                bars = await bars_between(
                    session=session, symbol=name, interval=interval, start=start
                )
                outcomes = await asyncio.to_thread(_outcomes, group, bars)  # off the loop
                done.update(outcome.signal_id for outcome in outcomes)
                found.extend(outcomes)
            left = [signal.bar_time for signal in pending if signal.signal_id not in done]
            still[symbol] = min(left, default=None)
    resolved = 0
    if found:
        async with write_transaction(session_factory, lock=write_lock) as session:
            resolved = await insert_outcomes(session=session, outcomes=found)
    telemetry.OUTCOMES.inc(resolved)
    return resolved, still


def snapshot_due(
    *, scheduled: float, last_snapshot: float | None, now: float, fresh_interval: float
) -> float:
    """When to snapshot once new outcomes were resolved: now, or `fresh_interval` after the last
    snapshot if that is later (debounced while outcomes keep arriving), never after `scheduled`
    (the regular snapshot)."""
    earliest = now if last_snapshot is None else max(now, last_snapshot + fresh_interval)
    return min(scheduled, earliest)


NOTHING_PENDING = datetime.max.replace(tzinfo=UTC)


class OutcomeWorker:
    """Resolves outcomes in the background after batches, and snapshots live metrics.

    Off the alert path: a batch only marks its symbols; the worker coalesces the marks and
    resolves at most once every `min_interval_seconds`, so that under load it does not compete
    with every batch for the event loop and the database's write lock.

    Bounded: per symbol the worker knows the oldest bar that may still have a pending signal (the
    oldest left unresolved, or the oldest bar a batch stored since), and reads pending signals
    from there on (an index range), not the whole signals table at every step. A symbol it knows
    nothing of (at start, after a rebalance, `mark` without bars) is read whole once.

    Live metrics are snapshotted every `snapshot_every_seconds` and, so that the dashboard's live
    columns follow a replay, soon after new outcomes were resolved: at most once every
    `fresh_interval_seconds` while outcomes keep arriving.

    Every transaction of the worker that writes is taken under `write_lock`, the lock the
    consumer's batches take around their write, so that a batch waits for at most one short
    transaction of the worker. Without it, SQLite's busy handler (sleeps of 1 to 100 ms between
    tries) lost the write lock to the worker's next transaction again and again: a live-metric
    snapshot of a replay at 500 alerts/s held the batches back 1.5 s.
    """

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        cost_bps: float,
        snapshot_every_seconds: float = 300.0,
        fresh_interval_seconds: float = 15.0,
        min_interval_seconds: float = 1.0,
        write_lock: asyncio.Lock | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._write_lock = write_lock
        self._cost_bps = cost_bps
        self._every = snapshot_every_seconds
        self._fresh = fresh_interval_seconds
        self._min_interval = min_interval_seconds
        self._symbols: set[str] = set()
        self._known: dict[str, datetime] = {}  # symbol -> oldest bar that may be pending
        self._wake = asyncio.Event()
        self._next_snapshot = 0.0  # loop time; set by `run`
        self._last_snapshot: float | None = None
        self.snapshots = 0  # snapshots started since start (a failed one is logged)

    def mark(self, symbols: Iterable[str]) -> None:
        """Resolve these symbols' pending signals, all of them (their bounds are forgotten)."""
        chosen = set(symbols)
        for symbol in chosen:
            self._known.pop(symbol, None)
        self._wake_for(chosen)

    def mark_stored(self, oldest: Mapping[str, datetime]) -> None:
        """A batch stored bars and signals of these symbols, none older than `oldest`."""
        for symbol, bar_time in oldest.items():
            if symbol in self._known:
                self._known[symbol] = min(self._known[symbol], bar_time)
        self._wake_for(oldest)

    def forget(self) -> None:
        """Partitions moved: other consumers may have stored signals; read every symbol whole."""
        self._known.clear()

    def _wake_for(self, symbols: Iterable[str]) -> None:
        self._symbols.update(symbols)
        if self._symbols:
            self._wake.set()

    async def run(self) -> None:
        """Until cancelled: resolve marked symbols; snapshot live metrics when due."""
        loop = asyncio.get_running_loop()
        self._next_snapshot = loop.time() + self._every
        while True:
            timeout = max(0.0, self._next_snapshot - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            await self._step()
            await asyncio.sleep(self._min_interval)  # marks made meanwhile are coalesced
            if loop.time() >= self._next_snapshot:
                self.snapshots += 1
                await self._guarded(self._snapshot)
                self._last_snapshot = loop.time()
                self._next_snapshot = self._last_snapshot + self._every

    async def _step(self) -> None:
        self._wake.clear()
        symbols, self._symbols = self._symbols, set()
        if symbols:
            await self._guarded(lambda: self._resolve(symbols))

    async def _resolve(self, symbols: set[str]) -> None:
        bounds: dict[str | None, datetime | None] = {s: self._known.get(s) for s in symbols}
        for symbol in symbols:  # marks made while this step runs lower these bounds
            self._known[symbol] = NOTHING_PENDING
        try:
            resolved, still = await _resolve(self._session_factory, bounds, self._write_lock)
        except BaseException:
            for symbol in symbols:
                self._known.pop(symbol, None)
            raise
        for name, oldest in still.items():
            if name is not None and name in self._known:
                self._known[name] = min(self._known[name], oldest or NOTHING_PENDING)
        if resolved:
            self._next_snapshot = snapshot_due(
                scheduled=self._next_snapshot,
                last_snapshot=self._last_snapshot,
                now=asyncio.get_running_loop().time(),
                fresh_interval=self._fresh,
            )

    async def _snapshot(self) -> None:
        await snapshot_live_metrics(
            session_factory=self._session_factory,
            cost_bps=self._cost_bps,
            write_lock=self._write_lock,
        )

    @staticmethod
    async def _guarded(step: Callable[[], Awaitable[None]]) -> None:
        try:
            await step()
        except Exception:
            # derived data: the next run recomputes it; the alert path is never affected
            log.exception("outcome resolution or live-metric snapshot failed; will retry")
