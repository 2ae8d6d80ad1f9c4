"""`itff notifier` and `itff notifications list|retry` as an operator runs them: a notifier without
a destination says what to set; parked deliveries are listed with their error and sent again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Settings, Signal
from storage.notifications import record_notification
from tests.support.cli import run_itff
from tests.support.destinations import DISCORD_PATH, destination_servers
from tests.support.env import child_env
from tests.support.webhook import new_secret

SIGNAL = Signal(
    signal_id="6f1c0e7d2a4b4a4f9d8e3c2b1a0f9e8d",
    alert_id="a" * 32,
    symbol="SPX",
    interval="1D",
    bar_time=datetime(2018, 12, 31, tzinfo=UTC),
    model_key="SPX-direction-logreg",
    model_version="v1",
    target="direction",
    prediction=1.0,
    probability=0.61,
    action="buy",
    ood=False,
    latency_ms=4.2,
)


def test_a_notifier_without_a_destination_says_what_to_set(settings: Settings) -> None:
    result = run_itff(child_env(settings), "notifier", "--metrics-port", "0")
    assert result.returncode == 2
    assert "no destination: set ITFF_SIGNAL_WEBHOOK_URLS" in result.stderr
    assert "Traceback" not in result.stderr


async def test_parked_notifications_are_listed_and_retried(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with session_factory() as session, session.begin():
        await record_notification(
            session=session,
            destination="discord",
            signal_id=SIGNAL.signal_id,
            status="parked",
            attempts=7,
            last_error="HTTP 503: down",
            signal=SIGNAL.model_dump_json(),
        )
    async with destination_servers(new_secret()) as stubs:
        env = child_env(settings) | {"ITFF_DISCORD_WEBHOOK_URL": stubs.discord.url(DISCORD_PATH)}
        listed = await asyncio.to_thread(run_itff, env, "notifications", "list", "--parked")
        assert listed.returncode == 0, listed.stderr
        assert "1 notifications" in listed.stdout
        assert "discord" in listed.stdout
        assert "HTTP 503: down" in listed.stdout
        unknown = await asyncio.to_thread(
            run_itff, env, "notifications", "retry", "--destination", "telegram"
        )
        assert unknown.returncode == 1
        assert "no destination ['telegram'] is configured" in unknown.stderr
        retried = await asyncio.to_thread(run_itff, env, "notifications", "retry")
        assert retried.returncode == 0, retried.stderr
        assert "retried 1 parked notifications: 1 delivered" in retried.stdout
        assert stubs.discord.ids() == {SIGNAL.signal_id: 1}
        assert DISCORD_PATH not in retried.stdout + retried.stderr
    listed = await asyncio.to_thread(run_itff, env, "notifications", "list", "--parked")
    assert "0 notifications" in listed.stdout
