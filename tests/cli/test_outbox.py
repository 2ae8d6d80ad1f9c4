"""`itff outbox` on a real SQLite outbox (no broker): only parked entries are retried or dropped,
`--all` and `--all-parked` say what they did, and mistakes are one clear line."""

from __future__ import annotations

import pytest

from bot.contracts import Settings
from storage import outbox as repo
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade_async
from tests.support.cli import run_itff
from tests.support.env import child_env
from tests.support.kafka import run_sync

ALERTS = ("alert-0001", "alert-0002", "alert-0003")


async def _seed(database_url: str) -> list[int]:
    """Three entries, the first two parked as the drainer parks them (counted refusals)."""
    await upgrade_async(database_url)
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            for alert_id in ALERTS:
                await repo.add_outbox_entry(
                    session=session, alert_id=alert_id, topic="t.alerts", key=b"SPX", payload=b"{}"
                )
        async with sessions() as session, session.begin():
            ids = [entry.id for entry in await repo.list_outbox_entries(session=session)]
            error = "MessageSizeTooLargeError('too large')"
            await repo.record_outbox_failure(
                session=session, ids=ids[:2], error=error, counted=True
            )
            await repo.park_exhausted_entries(session=session, ids=ids[:2], max_attempts=1)
    finally:
        await engine.dispose()
    return ids


@pytest.fixture
def outbox(settings: Settings) -> list[int]:
    """The ids of the seeded entries (seeded on a private loop: the tests run `itff` blocking)."""
    return run_sync(_seed(settings.database_url))


def test_queued_entries_are_neither_retried_nor_dropped(
    settings: Settings, outbox: list[int]
) -> None:
    env = child_env(settings)
    for command in ("retry", "drop"):
        refused = run_itff(env, "outbox", command, "alert-0003")
        assert refused.returncode == 1
        assert refused.stderr.strip() == (
            f"itff: entry {outbox[2]} (alert alert-0003) is queued, not parked: the receiver is "
            "still delivering it"
        )
    listed = run_itff(env, "outbox", "list", "--parked")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0] == "outbox: 1 queued, 2 parked"
    assert [line.split()[1] for line in listed.stdout.splitlines()[2:]] == list(ALERTS[:2])


def test_retry_one_then_drop_all_parked_say_what_they_did(
    settings: Settings, outbox: list[int]
) -> None:
    env = child_env(settings)
    retried = run_itff(env, "outbox", "retry", "alert-0001")
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.splitlines() == [
        f"queued again: entry {outbox[0]} (alert alert-0001)",
        "1 parked entry queued again; a running receiver sends them within seconds",
    ]
    dropped = run_itff(env, "outbox", "drop", "--all-parked")
    assert dropped.returncode == 0, dropped.stderr
    assert dropped.stdout.splitlines() == [
        (
            f"dropped: entry {outbox[1]} (alert alert-0002, topic t.alerts, 1 attempts, "
            "last error: MessageSizeTooLargeError('too large'))"
        ),
        "1 parked entry dropped",
    ]
    assert run_itff(env, "outbox", "retry", "--all").stdout == "no parked entries\n"
    listed = run_itff(env, "outbox", "list").stdout.splitlines()
    assert listed[0] == "outbox: 2 queued, 0 parked"
    assert [line.split()[1:5] for line in listed[2:]] == [
        ["alert-0001", "t.alerts", "0", "queued"],  # fresh attempts
        ["alert-0003", "t.alerts", "0", "queued"],
    ]
