"""The durable outbox: alerts accepted while Kafka could not confirm them, drained in id order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.tables import OutboxEntry

MAX_ERROR_CHARS = 500


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
    """The oldest queued entries first (the order they were accepted in)."""
    rows = await session.scalars(select(OutboxEntry).order_by(OutboxEntry.id).limit(limit))
    return list(rows)


async def delete_outbox_entries(*, session: AsyncSession, ids: Sequence[int]) -> None:
    if ids:
        await session.execute(delete(OutboxEntry).where(OutboxEntry.id.in_(ids)))


async def delete_outbox_alert(*, session: AsyncSession, alert_id: str) -> None:
    await session.execute(delete(OutboxEntry).where(OutboxEntry.alert_id == alert_id))


async def record_outbox_failure(*, session: AsyncSession, ids: Sequence[int], error: str) -> None:
    if ids:
        await session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id.in_(ids))
            .values(attempts=OutboxEntry.attempts + 1, last_error=error[:MAX_ERROR_CHARS])
        )


async def outbox_depth(*, session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(OutboxEntry)) or 0)
