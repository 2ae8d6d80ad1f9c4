"""The outbox's repository functions on real SQLite and PostgreSQL: what is queued, what is
parked, and when."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage import outbox as repo
from tests.support.postgres import both_stores

pytestmark = both_stores

Sessions = async_sessionmaker[AsyncSession]


async def _queue(sessions: Sessions, *alert_ids: str) -> list[int]:
    async with sessions() as session, session.begin():
        for alert_id in alert_ids:
            await repo.add_outbox_entry(
                session=session, alert_id=alert_id, topic="itff.alerts", key=b"SPX", payload=b"{}"
            )
    async with sessions() as session:
        return [entry.id for entry in await repo.list_outbox_entries(session=session)]


async def _fail(
    sessions: Sessions, ids: list[int], *, counted: bool, max_attempts: int
) -> list[str]:
    """One failed drain round, as the drainer stores it."""
    async with sessions() as session, session.begin():
        await repo.record_outbox_failure(
            session=session, ids=ids, error="Refused()", counted=counted
        )
        return await repo.park_exhausted_entries(
            session=session, ids=ids if counted else [], max_attempts=max_attempts
        )


async def test_entries_park_after_max_counted_failures_only(session_factory: Sessions) -> None:
    first, second = await _queue(session_factory, "alert-0001", "alert-0002")
    for _ in range(5):
        assert await _fail(session_factory, [first, second], counted=False, max_attempts=2) == []
    assert await _fail(session_factory, [first, second], counted=True, max_attempts=2) == []
    assert await _fail(session_factory, [first], counted=True, max_attempts=2) == ["alert-0001"]
    async with session_factory() as session:
        pending = await repo.pending_outbox_entries(session=session, limit=10)
        counts = await repo.outbox_counts(session=session)
        listed = await repo.list_outbox_entries(session=session)
    assert [entry.alert_id for entry in pending] == ["alert-0002"]  # parked: not drained
    assert counts == repo.OutboxCounts(queued=1, parked=1)
    assert [(e.attempts, e.parked_at is not None, e.last_error) for e in listed] == [
        (2, True, "Refused()"),
        (1, False, "Refused()"),
    ]


async def test_unpark_queues_again_with_fresh_attempts_and_drop_takes_parked_only(
    session_factory: Sessions,
) -> None:
    ids = await _queue(session_factory, "alert-0001", "alert-0002", "alert-0003")
    await _fail(session_factory, ids[:2], counted=True, max_attempts=1)
    async with session_factory() as session, session.begin():
        assert await repo.unpark_outbox_entries(session=session, ids=[ids[0], ids[2]]) == 1
        dropped = await repo.delete_parked_entries(session=session, ids=None)
        by_id = await repo.find_outbox_entries(session=session, ref=str(ids[0]))
        by_alert = await repo.find_outbox_entries(session=session, ref="alert-0001")
        counts = await repo.outbox_counts(session=session)
    assert [entry.alert_id for entry in dropped] == ["alert-0002"]
    assert by_id == by_alert
    assert [(e.alert_id, e.attempts, e.parked_at) for e in by_id] == [("alert-0001", 0, None)]
    assert counts == repo.OutboxCounts(queued=2, parked=0)
