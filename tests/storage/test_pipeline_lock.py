"""The pipeline lock on real SQLite and PostgreSQL: of concurrent takers exactly one wins; an
expired lock is taken over, and its former holder can neither extend nor release its successor's
lock."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from storage import pipeline_lock as lock_repo
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade_async
from tests.support.postgres import both_stores

T0 = datetime(2026, 12, 4, 2, 30, tzinfo=UTC)
TTL = timedelta(seconds=60)
CONTENDERS = 6


pytestmark = both_stores


async def _url(database_url: str) -> str:
    await upgrade_async(database_url)
    return database_url


async def _call(url: str, action, **kwargs):
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session:
            result = await action(session=session, **kwargs)
            await session.commit()
            return result
    finally:
        await engine.dispose()


def _contender(url: str, run_id: str, barrier: threading.Barrier) -> bool:
    """One process's attempt, on its own engine, connection and event loop (in its own thread),
    released with the others."""

    async def attempt() -> bool:
        engine = create_engine(url)
        try:
            async with create_session_factory(engine)() as session:
                await session.execute(text("SELECT 1"))  # connected before the race starts
                await asyncio.to_thread(barrier.wait)
                taken = await lock_repo.acquire(
                    session=session, run_id=run_id, holder=f"contender {run_id}", now=T0, ttl=TTL
                )
                await session.commit()
                return taken
        finally:
            await engine.dispose()

    return asyncio.run(attempt())


def _race(url: str, run_ids: list[str], barrier: threading.Barrier) -> list[bool]:
    with ThreadPoolExecutor(len(run_ids)) as pool:
        return list(pool.map(_contender, [url] * len(run_ids), run_ids, [barrier] * len(run_ids)))


async def test_of_concurrent_takers_exactly_one_wins(database_url: str) -> None:
    url = await _url(database_url)
    for round_ in range(3):
        barrier = threading.Barrier(CONTENDERS)
        run_ids = [f"r{round_}-{n}" for n in range(CONTENDERS)]
        results = await asyncio.to_thread(_race, url, run_ids, barrier)
        assert results.count(True) == 1, results
        winner = run_ids[results.index(True)]
        held = await _call(url, lock_repo.current)
        assert (held.run_id, held.holder) == (winner, f"contender {winner}")
        await _call(url, lock_repo.release, run_id=winner)
        assert await _call(url, lock_repo.current) is None


async def test_a_live_lock_is_refused_and_an_expired_one_taken_over(database_url: str) -> None:
    url = await _url(database_url)

    async def take(run_id: str, now: datetime) -> bool:
        return await _call(url, lock_repo.acquire, run_id=run_id, holder=run_id, now=now, ttl=TTL)

    assert await take("crashed", T0)
    assert not await take("second", T0 + TTL - timedelta(seconds=1))  # live: refused
    assert await take("second", T0 + TTL + timedelta(seconds=1))  # expired: taken over
    held = await _call(url, lock_repo.current)
    assert (held.run_id, held.acquired_at) == ("second", T0 + TTL + timedelta(seconds=1))

    beat = await _call(url, lock_repo.heartbeat, run_id="crashed", now=T0, ttl=TTL)
    assert beat is False  # the former holder learns it lost the lock
    await _call(url, lock_repo.release, run_id="crashed")
    assert (await _call(url, lock_repo.current)).run_id == "second"  # not released


async def test_a_heartbeat_keeps_the_lock_past_its_first_expiry(database_url: str) -> None:
    url = await _url(database_url)
    assert await _call(url, lock_repo.acquire, run_id="a", holder="a", now=T0, ttl=TTL)
    later = T0 + TTL - timedelta(seconds=5)
    assert await _call(url, lock_repo.heartbeat, run_id="a", now=later, ttl=TTL)
    taken = await _call(
        url,
        lock_repo.acquire,
        run_id="b",
        holder="b",
        now=T0 + TTL + timedelta(seconds=1),
        ttl=TTL,
    )
    assert taken is False  # extended to later + TTL
