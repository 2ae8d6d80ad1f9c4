"""The notifier's record of each signal's delivery to each destination (`notifications`).

A signal whose destination has a row is never sent there again by the notifier: `delivered` is
done, `parked` waits for `itff notifications retry`, which sends it again and updates the row.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Literal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.contracts import utcnow
from storage.tables import Notification

Status = Literal["delivered", "parked"]
MAX_ERROR_CHARS = 500


async def recorded(*, session: AsyncSession, signal_ids: Collection[str]) -> set[tuple[str, str]]:
    """(destination, signal id) of the signals that already have a row (delivered or parked)."""
    rows = await session.execute(
        select(Notification.destination, Notification.signal_id).where(
            Notification.signal_id.in_(signal_ids)
        )
    )
    return {(destination, signal_id) for destination, signal_id in rows.tuples()}


async def record_notification(
    *,
    session: AsyncSession,
    destination: str,
    signal_id: str,
    status: Status,
    attempts: int,
    last_error: str | None,
    signal: str,
) -> None:
    """Insert or update the row of (destination, signal); the caller commits."""
    now = utcnow()
    values = {
        "destination": destination,
        "signal_id": signal_id,
        "status": status,
        "attempts": attempts,
        "last_error": last_error[:MAX_ERROR_CHARS] if last_error else None,
        "signal": signal,
        "created_at": now,
        "updated_at": now,
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(Notification).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["destination", "signal_id"],
            set_={
                "status": status,
                "attempts": Notification.attempts + attempts,
                "last_error": values["last_error"],
                "updated_at": now,
            },
        )
    )


async def list_notifications(
    *,
    session: AsyncSession,
    status: Status | None = None,
    destinations: Collection[str] = (),
    signal_ids: Collection[str] = (),
    limit: int = 1000,
) -> Sequence[Notification]:
    """Rows oldest first, filtered by status, destinations and signal ids (empty: any)."""
    query = select(Notification).order_by(Notification.created_at, Notification.destination)
    if status is not None:
        query = query.where(Notification.status == status)
    if destinations:
        query = query.where(Notification.destination.in_(destinations))
    if signal_ids:
        query = query.where(Notification.signal_id.in_(signal_ids))
    return (await session.scalars(query.limit(limit))).all()
