"""Running live-metric aggregates: the outcomes they do not count yet, their rows, their lock."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.contracts import utcnow
from storage.bars import insert_for
from storage.signals import ResolvedSignal, resolved_columns
from storage.tables import LiveAggregate, LiveAggregateState, Outcome, SignalRow

ALL = "all"  # the all-time bucket; sorts after every `YYYY-MM-DD`
STATE = "live"
_CHUNK = 900  # ids per IN (...)
AGGREGATES = LiveAggregate.__table__


@dataclass(frozen=True, slots=True)
class AggregateRow:
    model_key: str
    bucket: str
    target: str
    interval: str
    segment: dict[str, Any]


async def lock(*, session: AsyncSession, cost_bps: float) -> float | None:
    """Take the aggregates for this transaction (a write first: SQLite's write lock, PostgreSQL's
    row lock) and return the cost they were built with (None: never built)."""
    now = utcnow()
    state = LiveAggregateState
    touch = update(state).where(state.name == STATE).values(applied_at=now)
    touched = await session.execute(touch.returning(state.cost_bps))
    cost = touched.scalar_one_or_none()
    if cost is None:
        await session.execute(insert(state).values(name=STATE, cost_bps=cost_bps, applied_at=now))
    return cost


async def set_cost(*, session: AsyncSession, cost_bps: float) -> None:
    state = LiveAggregateState
    await session.execute(update(state).where(state.name == STATE).values(cost_bps=cost_bps))


async def unaggregated(
    *, session: AsyncSession, limit: int
) -> tuple[list[str], list[ResolvedSignal]]:
    """Up to `limit` outcomes the aggregates do not count yet, by model and bar (the partial
    index): their signal ids and the resolved signals."""
    statement = (
        select(Outcome.signal_id, *resolved_columns())
        .join(SignalRow, SignalRow.signal_id == Outcome.signal_id)
        .where(~Outcome.aggregated)
        .order_by(Outcome.model_key, Outcome.bar_time)
        .limit(limit)
    )
    rows = (await session.execute(statement)).all()
    return [row[0] for row in rows], [ResolvedSignal(*row[1:]) for row in rows]


async def mark_aggregated(*, session: AsyncSession, signal_ids: Sequence[str]) -> None:
    for start in range(0, len(signal_ids), _CHUNK):
        chosen = signal_ids[start : start + _CHUNK]
        await session.execute(
            update(Outcome).where(Outcome.signal_id.in_(chosen)).values(aggregated=True)
        )


async def aggregated_between(
    *, session: AsyncSession, model_key: str, start: datetime, end: datetime
) -> list[ResolvedSignal]:
    """The counted resolved signals of one model with bars in [start, end), oldest first."""
    statement = (
        select(*resolved_columns())
        .join(SignalRow, SignalRow.signal_id == Outcome.signal_id)
        .where(
            Outcome.model_key == model_key,
            Outcome.bar_time >= start,
            Outcome.bar_time < end,
            Outcome.aggregated,
        )
        .order_by(Outcome.bar_time)
    )
    return [ResolvedSignal(*row) for row in (await session.execute(statement)).all()]


def _row(item: Any) -> AggregateRow:
    return AggregateRow(item.model_key, item.bucket, item.target, item.interval, item.segment)


async def buckets(
    *, session: AsyncSession, model_key: str, names: Iterable[str] | None = None
) -> list[AggregateRow]:
    """One model's rows (those named, or all of them), in bucket order (`all` last)."""
    statement = select(AGGREGATES).where(AGGREGATES.c.model_key == model_key)
    if names is not None:
        statement = statement.where(AGGREGATES.c.bucket.in_(sorted(set(names))))
    statement = statement.order_by(AGGREGATES.c.bucket)
    return [_row(item) for item in (await session.execute(statement)).all()]


def day_buckets_statement(first: str | None) -> Select[Any]:
    """`model_key, bucket, segment` of every model's day rows from bucket `first` on (None: all
    of them), by model and day (the dashboard runs it on its read-only engine)."""
    statement = select(AGGREGATES.c.model_key, AGGREGATES.c.bucket, AGGREGATES.c.segment).where(
        AGGREGATES.c.bucket != ALL
    )
    if first is not None:
        statement = statement.where(AGGREGATES.c.bucket >= first)
    return statement.order_by(AGGREGATES.c.model_key, AGGREGATES.c.bucket)


async def buckets_since(*, session: AsyncSession, first: str) -> list[AggregateRow]:
    """Every model's day rows from bucket `first` on, and its `all` row (in no order: a range of
    `ix_live_aggregates_bucket`, not a pass over every day of every model)."""
    statement = select(AGGREGATES).where(AGGREGATES.c.bucket >= first)
    return [_row(item) for item in (await session.execute(statement)).all()]


@functools.cache
def _upsert(dialect: str) -> Any:
    statement = insert_for(dialect, AGGREGATES)
    return statement.on_conflict_do_update(
        index_elements=["model_key", "bucket"],
        set_={
            name: statement.excluded[name]
            for name in ("target", "interval", "segment", "updated_at")
        },
    )


async def save(*, session: AsyncSession, rows: Sequence[AggregateRow]) -> None:
    if not rows:
        return
    now = utcnow()
    values = [
        {
            "model_key": row.model_key,
            "bucket": row.bucket,
            "target": row.target,
            "interval": row.interval,
            "segment": row.segment,
            "updated_at": now,
        }
        for row in rows
    ]
    await session.execute(_upsert(session.get_bind().dialect.name), values)


async def reset_from_raw(*, session: AsyncSession) -> int:
    """Forget what the stored outcomes contributed: per model, the buckets from the day of its
    oldest stored outcome on (and `all`) go, and every stored outcome is to be counted again.
    Buckets of older days (archived rows) stay. Returns the outcomes to count."""
    oldest = (
        await session.execute(
            select(Outcome.model_key, func.min(Outcome.bar_time)).group_by(Outcome.model_key)
        )
    ).all()
    for model_key, first in oldest:
        await session.execute(
            delete(LiveAggregate).where(
                LiveAggregate.model_key == model_key,
                LiveAggregate.bucket >= first.strftime("%Y-%m-%d"),
            )
        )
    await session.execute(update(Outcome).where(Outcome.aggregated).values(aggregated=False))
    await session.execute(delete(LiveAggregate).where(LiveAggregate.bucket == ALL))
    total = await session.execute(select(func.count()).select_from(Outcome))
    return int(total.scalar_one())
