"""Signals, outcomes and live-metric snapshots: idempotent writes and the reads that feed them."""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Dialect, Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from bot.contracts import Signal, utcnow
from storage.bars import bind_processors, driver_rows, insert_for
from storage.tables import LiveMetricSnapshot, Outcome, SignalRow

SIGNALS = SignalRow.__table__
SIGNAL_FIELDS = tuple(name for name in Signal.model_fields if name != "schema_version")
_CHUNK = 900  # ids per IN (...) query


@dataclass(frozen=True, slots=True)
class PendingSignal:
    """A stored signal still waiting for the bar `horizon` bars after its own."""

    signal_id: str
    model_key: str
    symbol: str
    interval: str
    bar_time: datetime
    horizon: int
    action: str
    target: str
    prediction: float


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    signal_id: str
    model_key: str
    bar_time: datetime
    exit_time: datetime
    realised_return: float
    hit: bool | None
    strategy_return: float


@dataclass(frozen=True, slots=True)
class ResolvedSignal:
    """A signal joined with its outcome: the input of live metrics."""

    model_key: str
    target: str
    interval: str
    bar_time: datetime
    prediction: float
    probability: float | None
    action: str
    realised_return: float
    strategy_return: float
    hit: bool | None
    model_version: str = ""


# the table's column order: a multi-row VALUES lists its parameters in it
SIGNAL_COLUMNS = tuple(column.name for column in SIGNALS.c)
# Larger batches go in several statements of at most this many rows, so that a consumer compiles
# at most this many statements per backend, once each: with one statement per batch size (up to
# 500 rows), batches of ever new sizes under load kept compiling (5 % of a consumer's CPU at
# 150 alerts/s, py-spy). 64 x 19 parameters is far under SQLite's and asyncpg's 32,767.
SIGNAL_ROWS_PER_STATEMENT = 64
_BACKENDS = 2  # SQLite, PostgreSQL


@functools.lru_cache(maxsize=SIGNAL_ROWS_PER_STATEMENT * _BACKENDS)
def _insert_signals_sql(dialect: Dialect, rows: int) -> str:
    """`INSERT ... VALUES (...) x rows ON CONFLICT DO NOTHING RETURNING signal_id` in the
    driver's own parameter style, compiled once per backend and row count. SQLAlchemy does not
    cache a dialect's `INSERT ... ON CONFLICT` (`inherit_cache = False`), so it compiled the
    statement again on every batch; and `text()` runs one row per call (`executemany`), which
    cannot say which rows the conflict skipped. One statement, its RETURNING, says that."""
    values: list[dict[str, Any]] = [
        {name: bindparam(f"{name}_{row}") for name in SIGNAL_COLUMNS} for row in range(rows)
    ]
    statement = insert_for(dialect.name, SIGNALS).values(values)
    compiled = (
        statement.on_conflict_do_nothing().returning(SIGNALS.c.signal_id).compile(dialect=dialect)
    )
    order = [f"{name}_{row}" for row in range(rows) for name in SIGNAL_COLUMNS]
    if compiled.positiontup != order:  # the parameters are passed in this order
        raise RuntimeError(f"unexpected parameter order in {compiled}")
    return str(compiled)


_SIGNAL_VALUES = operator.attrgetter(
    *("model_key" if name == "horizon" else name for name in SIGNAL_COLUMNS)
)
_HORIZON = SIGNAL_COLUMNS.index("horizon")


def _insert_signals_calls(
    dialect: Dialect, signals: Sequence[Signal], horizons: Mapping[str, int]
) -> list[tuple[str, tuple[Any, ...]]]:
    """(SQL, positional parameters) of each statement inserting `signals`."""
    processors = bind_processors(SIGNALS, dialect)
    calls = []
    for start in range(0, len(signals), SIGNAL_ROWS_PER_STATEMENT):
        chunk = signals[start : start + SIGNAL_ROWS_PER_STATEMENT]
        rows = [list(_SIGNAL_VALUES(signal)) for signal in chunk]
        for row, signal in zip(rows, chunk, strict=True):
            row[_HORIZON] = horizons.get(signal.model_key, 1)
        values = tuple(itertools.chain.from_iterable(driver_rows(rows, processors)))
        calls.append((_insert_signals_sql(dialect, len(chunk)), values))
    return calls


async def insert_signals(
    *, session: AsyncSession, signals: Sequence[Signal], horizons: Mapping[str, int]
) -> set[str]:
    """Insert signals, skipping any (alert_id, model_key) already stored; returns inserted ids."""
    if not signals:
        return set()
    connection = await session.connection()
    inserted: set[str] = set()
    for sql, params in _insert_signals_calls(connection.dialect, signals, horizons):
        inserted.update((await connection.exec_driver_sql(sql, params)).scalars())
    return inserted


def insert_signals_sync(
    *, session: Session, signals: Sequence[Signal], horizons: Mapping[str, int]
) -> set[str]:
    """`insert_signals` on a synchronous session (the consumer's write in its worker thread)."""
    if not signals:
        return set()
    connection = session.connection()
    inserted: set[str] = set()
    for sql, params in _insert_signals_calls(connection.dialect, signals, horizons):
        # the DBAPI cursor's rows: SQLAlchemy's row processing cost 25 us more per batch
        cursor = connection.exec_driver_sql(sql, params).cursor
        inserted.update(row[0] for row in cursor.fetchall())
    return inserted


def _to_signal(row: SignalRow) -> Signal:
    return Signal.model_validate({name: getattr(row, name) for name in SIGNAL_FIELDS})


def _signals_statements(alert_ids: Sequence[str]) -> list[Any]:
    unique = sorted(set(alert_ids))
    return [
        select(SignalRow).where(SignalRow.alert_id.in_(unique[start : start + _CHUNK]))
        for start in range(0, len(unique), _CHUNK)
    ]


async def signals_for_alerts(*, session: AsyncSession, alert_ids: Sequence[str]) -> list[Signal]:
    """Every stored signal of these alerts, as they were first emitted."""
    found: list[Signal] = []
    for statement in _signals_statements(alert_ids):
        found.extend(_to_signal(row) for row in (await session.execute(statement)).scalars())
    return found


def signals_for_alerts_sync(*, session: Session, alert_ids: Sequence[str]) -> list[Signal]:
    """`signals_for_alerts` on a synchronous session."""
    found: list[Signal] = []
    for statement in _signals_statements(alert_ids):
        found.extend(_to_signal(row) for row in session.execute(statement).scalars())
    return found


async def pending_signals(
    *, session: AsyncSession, symbol: str | None = None, since: datetime | None = None
) -> list[PendingSignal]:
    """Signals without an outcome yet, oldest bar first (of one symbol, or of all); with `since`,
    only those of bars from `since` on (an index range instead of the whole table)."""
    statement = (
        select(
            SignalRow.signal_id,
            SignalRow.model_key,
            SignalRow.symbol,
            SignalRow.interval,
            SignalRow.bar_time,
            SignalRow.horizon,
            SignalRow.action,
            SignalRow.target,
            SignalRow.prediction,
        )
        .outerjoin(Outcome, Outcome.signal_id == SignalRow.signal_id)
        .where(Outcome.signal_id.is_(None))
        .order_by(SignalRow.bar_time)
    )
    if symbol is not None:
        statement = statement.where(SignalRow.symbol == symbol)
    if since is not None:
        statement = statement.where(SignalRow.bar_time >= since)
    return [PendingSignal(*row) for row in (await session.execute(statement)).all()]


@functools.cache
def _insert_outcomes_statement(dialect: str) -> Any:
    table = Outcome.__table__
    return insert_for(dialect, table).on_conflict_do_nothing().returning(table.c.signal_id)


async def insert_outcomes(*, session: AsyncSession, outcomes: Sequence[OutcomeRecord]) -> int:
    """Store outcomes; one already stored for a signal is kept. Returns the rows inserted."""
    if not outcomes:
        return 0
    now = utcnow()
    rows = [
        {
            "signal_id": o.signal_id,
            "model_key": o.model_key,
            "bar_time": o.bar_time,
            "exit_time": o.exit_time,
            "realised_return": o.realised_return,
            "hit": o.hit,
            "strategy_return": o.strategy_return,
            "resolved_at": now,
        }
        for o in outcomes
    ]
    # one cached statement over many parameter sets, not a multi-row VALUES compiled per call
    statement = _insert_outcomes_statement(session.get_bind().dialect.name)
    return len((await session.execute(statement, rows)).all())


async def resolved_signals(
    *, session: AsyncSession, since: datetime | None = None
) -> list[ResolvedSignal]:
    """Signals with their outcomes (bar time at or after `since`), oldest bar first."""
    statement = (
        select(*resolved_columns(), SignalRow.model_version)
        .join(Outcome, Outcome.signal_id == SignalRow.signal_id)
        .order_by(SignalRow.model_key, SignalRow.bar_time)
    )
    if since is not None:
        statement = statement.where(SignalRow.bar_time >= since)
    return [ResolvedSignal(*row) for row in (await session.execute(statement)).all()]


async def resolved_signal_rows(
    *,
    session: AsyncSession,
    since: datetime | None = None,
    until: datetime | None = None,
    resolved: tuple[datetime, datetime] | None = None,
) -> list[SignalRow]:
    """Signals that have an outcome, with bar time in [since, until) and resolved within
    `resolved` (start inclusive, end exclusive), by model and bar time."""
    statement = (
        select(SignalRow)
        .join(Outcome, Outcome.signal_id == SignalRow.signal_id)
        .order_by(SignalRow.model_key, SignalRow.bar_time)
    )
    if since is not None:
        statement = statement.where(SignalRow.bar_time >= since)
    if until is not None:
        statement = statement.where(SignalRow.bar_time < until)
    if resolved is not None:
        statement = statement.where(
            Outcome.resolved_at >= resolved[0], Outcome.resolved_at < resolved[1]
        )
    return list((await session.scalars(statement)).all())


async def signal_latencies(
    *, session: AsyncSession, since: datetime, until: datetime
) -> list[tuple[str, float]]:
    """(model_key, receipt-to-signal latency in ms) of every signal with bar time in the range."""
    statement = select(SignalRow.model_key, SignalRow.latency_ms).where(
        SignalRow.bar_time >= since, SignalRow.bar_time < until
    )
    return [(str(key), float(ms)) for key, ms in (await session.execute(statement)).all()]


async def insert_live_metrics(
    *,
    session: AsyncSession,
    snapshots: Mapping[tuple[str, str], Mapping[str, float | None]],
    computed_at: datetime,
) -> int:
    """One `live_metrics` row per (model_key, window)."""
    session.add_all(
        LiveMetricSnapshot(
            model_key=key, window=window, computed_at=computed_at, metrics=dict(metrics)
        )
        for (key, window), metrics in snapshots.items()
    )
    await session.flush()
    return len(snapshots)


def latest_live_metrics_statement(window: str) -> Select[tuple[str, datetime, Any]]:
    """`model_key, computed_at, metrics` of the newest `live_metrics` row of each model for
    `window` (the dashboard runs it on its read-only engine, the scheduler on a session)."""
    table = LiveMetricSnapshot.__table__
    newest = (
        select(table.c.model_key, func.max(table.c.computed_at).label("computed_at"))
        .where(table.c.window == window)
        .group_by(table.c.model_key)
        .subquery()
    )
    return (
        select(table.c.model_key, table.c.computed_at, table.c.metrics)
        .join(
            newest,
            (table.c.model_key == newest.c.model_key)
            & (table.c.computed_at == newest.c.computed_at),
        )
        .where(table.c.window == window)
        .order_by(table.c.model_key, table.c.id)
    )


async def latest_live_metrics(*, session: AsyncSession, window: str) -> dict[str, dict[str, Any]]:
    """`{model_key: metrics}` of the newest `live_metrics` row of each model for `window`."""
    rows = (await session.execute(latest_live_metrics_statement(window))).all()
    return {str(key): dict(metrics) for key, _computed_at, metrics in rows}


def resolved_columns() -> tuple[Any, ...]:
    """The columns of a `ResolvedSignal`, in its order: a signal joined with its outcome."""
    return (
        SignalRow.model_key,
        SignalRow.target,
        SignalRow.interval,
        SignalRow.bar_time,
        SignalRow.prediction,
        SignalRow.probability,
        SignalRow.action,
        Outcome.realised_return,
        Outcome.strategy_return,
        Outcome.hit,
    )
