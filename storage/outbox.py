"""The durable outbox: alerts accepted while Kafka could not confirm them, drained in id order.

An entry is queued while `parked_at` is NULL. Parked entries are neither drained nor counted in
the depth that holds newer alerts back; `itff outbox retry` queues them again, `drop` deletes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.contracts import utcnow
from storage.tables import OutboxEntry

MAX_ERROR_CHARS = 500
MAX_ID_DIGITS = 18  # a 64-bit integer
QUEUED = OutboxEntry.parked_at.is_(None)
PARKED = OutboxEntry.parked_at.is_not(None)


@dataclass(frozen=True, slots=True)
class OutboxCounts:
    queued: int
    parked: int


@dataclass(frozen=True, slots=True)
class OutboxSummary:
    """An entry without its key and payload (what `itff outbox` shows)."""

    id: int
    alert_id: str
    topic: str
    attempts: int
    created_at: datetime
    parked_at: datetime | None
    last_error: str | None


SUMMARY_COLUMNS = (
    OutboxEntry.id,
    OutboxEntry.alert_id,
    OutboxEntry.topic,
    OutboxEntry.attempts,
    OutboxEntry.created_at,
    OutboxEntry.parked_at,
    OutboxEntry.last_error,
)


def _insert_ignoring_duplicates(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(OutboxEntry).on_conflict_do_nothing(index_elements=["alert_id"])


async def add_outbox_entry(
    *, session: AsyncSession, alert_id: str, topic: str, key: bytes, payload: bytes
) -> bool:
    """Queue one alert; False when an entry with this `alert_id` is already queued."""
    statement = _insert_ignoring_duplicates(session).values(
        alert_id=alert_id, topic=topic, key=key, payload=payload, attempts=0
    )
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))


async def outbox_contains(*, session: AsyncSession, alert_id: str) -> bool:
    found = await session.scalar(
        select(OutboxEntry.id).where(OutboxEntry.alert_id == alert_id).limit(1)
    )
    return found is not None


async def pending_outbox_entries(*, session: AsyncSession, limit: int) -> list[OutboxEntry]:
    """The oldest queued entries first (the order they were accepted in); parked ones left out."""
    statement = select(OutboxEntry).where(QUEUED).order_by(OutboxEntry.id).limit(limit)
    return list(await session.scalars(statement))


async def delete_outbox_entries(*, session: AsyncSession, ids: Sequence[int]) -> None:
    if ids:
        await session.execute(delete(OutboxEntry).where(OutboxEntry.id.in_(ids)))


async def delete_outbox_alert(*, session: AsyncSession, alert_id: str) -> None:
    await session.execute(delete(OutboxEntry).where(OutboxEntry.alert_id == alert_id))


async def record_outbox_failure(
    *, session: AsyncSession, ids: Sequence[int], error: str, counted: bool
) -> None:
    """Keep the error of a failed delivery; `counted` failures (Kafka refused the record itself)
    also count an attempt."""
    if not ids:
        return
    values: dict[str, Any] = {"last_error": error[:MAX_ERROR_CHARS]}
    if counted:
        values["attempts"] = OutboxEntry.attempts + 1
    await session.execute(update(OutboxEntry).where(OutboxEntry.id.in_(ids)).values(values))


async def park_exhausted_entries(
    *, session: AsyncSession, ids: Sequence[int], max_attempts: int
) -> list[str]:
    """Park the queued entries among `ids` that used up their attempts; their alert ids."""
    if not ids:
        return []
    exhausted = [OutboxEntry.id.in_(ids), QUEUED, OutboxEntry.attempts >= max_attempts]
    found = (
        await session.execute(select(OutboxEntry.id, OutboxEntry.alert_id).where(*exhausted))
    ).all()
    if found:
        parked = [row.id for row in found]
        await session.execute(
            update(OutboxEntry).where(OutboxEntry.id.in_(parked)).values(parked_at=utcnow())
        )
    return [row.alert_id for row in found]


async def outbox_counts(*, session: AsyncSession) -> OutboxCounts:
    """Queued (the depth) and parked entries, in one query."""
    total, parked = (
        await session.execute(select(func.count(), func.count(OutboxEntry.parked_at)))
    ).one()
    return OutboxCounts(queued=int(total) - int(parked), parked=int(parked))


def _matching(ref: str) -> ColumnElement[bool]:
    """An entry id (digits) or an alert id (8 to 128 characters, so rarely all digits)."""
    by_alert = OutboxEntry.alert_id == ref
    if ref.isascii() and ref.isdigit() and len(ref) <= MAX_ID_DIGITS:
        return or_(OutboxEntry.id == int(ref), by_alert)
    return by_alert


async def list_outbox_entries(
    *, session: AsyncSession, parked_only: bool = False, limit: int | None = None
) -> list[OutboxSummary]:
    """Entries in id order, without key and payload."""
    statement = select(*SUMMARY_COLUMNS).order_by(OutboxEntry.id).limit(limit)
    if parked_only:
        statement = statement.where(PARKED)
    return [OutboxSummary(*row) for row in await session.execute(statement)]


async def find_outbox_entries(*, session: AsyncSession, ref: str) -> list[OutboxSummary]:
    """The entries whose id or alert id is `ref` (normally one, or none)."""
    statement = select(*SUMMARY_COLUMNS).where(_matching(ref)).order_by(OutboxEntry.id)
    return [OutboxSummary(*row) for row in await session.execute(statement)]


async def unpark_outbox_entries(*, session: AsyncSession, ids: Sequence[int] | None) -> int:
    """Queue parked entries again (`ids`, or every parked one for None) with fresh attempts."""
    statement = update(OutboxEntry).where(PARKED).values(parked_at=None, attempts=0)
    if ids is not None:
        statement = statement.where(OutboxEntry.id.in_(ids))
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0))


async def delete_parked_entries(
    *, session: AsyncSession, ids: Sequence[int] | None
) -> list[OutboxSummary]:
    """Delete parked entries (`ids`, or every parked one for None); what was deleted."""
    chosen = [PARKED] if ids is None else [PARKED, OutboxEntry.id.in_(ids)]
    rows = await session.execute(select(*SUMMARY_COLUMNS).where(*chosen).order_by(OutboxEntry.id))
    deleted = [OutboxSummary(*row) for row in rows]
    if deleted:
        await session.execute(
            delete(OutboxEntry).where(OutboxEntry.id.in_([d.id for d in deleted]))
        )
    return deleted
