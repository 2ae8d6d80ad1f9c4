"""The notifier against a real broker and local servers standing in for a webhook receiver
(verifying signatures with `standardwebhooks`), Telegram's Bot API and a Discord webhook: each
signal to each destination that wants it, once; retried through failures and throttling; parked
with the last error when a destination keeps failing or refuses, until `retry` sends it again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Settings, Signal
from consumers.notifier import running_notifier
from consumers.notifier.parked import notifications, retry_parked
from tests.support.consumer import counted, eventually, produce
from tests.support.destinations import Destinations, destination_servers
from tests.support.postgres import both_stores
from tests.support.webhook import new_secret

pytestmark = [pytest.mark.kafka, both_stores]
BAR = datetime(2018, 12, 31, tzinfo=UTC)


def signal(symbol: str, action: str, n: int = 0) -> Signal:
    return Signal(
        signal_id=f"sig-{symbol}-{action}-{n}",
        alert_id=f"alert-{symbol}-{n}",
        symbol=symbol,
        interval="1D",
        bar_time=BAR,
        model_key=f"{symbol}-direction-logreg",
        model_version="20181231T000000Z",
        target="direction",
        prediction=1.0,
        probability=0.61,
        action=action,
        ood=False,
        latency_ms=4.2,
    )


async def send(settings: Settings, *signals: Signal) -> None:
    await produce(
        settings.bootstrap,
        settings.topics.signals,
        [(s.symbol.encode(), s.model_dump_json().encode()) for s in signals],
    )


@pytest.fixture
async def stubs() -> AsyncIterator[Destinations]:
    async with destination_servers(new_secret()) as servers:
        yield servers


def configured(settings: Settings, stubs: Destinations, **changes: Any) -> Settings:
    return settings.model_copy(update=stubs.settings() | changes)


async def test_each_signal_reaches_each_destination_that_wants_it_once(
    kafka_settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    stubs: Destinations,
) -> None:
    settings = configured(kafka_settings, stubs, discord_symbols=["SPX"])
    buy, hold, ndx, sell = (
        signal("SPX", "buy"),
        signal("SPX", "hold"),
        signal("NDX", "sell"),
        signal("SPX", "sell"),
    )
    async with running_notifier(settings):
        await send(settings, buy, hold, ndx, sell, buy)  # the last: a redelivery

        async def all_delivered() -> bool:
            return (
                len(stubs.webhook.accepted) >= 3
                and len(stubs.telegram.accepted) >= 3
                and len(stubs.discord.accepted) >= 2
                and counted(
                    "itff_notifier_deliveries_total", destination="webhook-1", result="duplicate"
                )
                >= 1
            )

        assert await eventually(all_delivered)
    everyone = {buy.signal_id: 1, ndx.signal_id: 1, sell.signal_id: 1}
    assert stubs.webhook.ids() == everyone  # hold skipped by default, the redelivery dropped
    assert stubs.telegram.ids() == everyone
    assert stubs.discord.ids() == {buy.signal_id: 1, sell.signal_id: 1}  # SPX only
    webhook = stubs.webhook.accepted[0]["payload"]
    assert webhook["type"] == "signal.created"
    assert Signal.model_validate(webhook["data"]) in {buy, ndx, sell}
    telegram = next(
        a["payload"] for a in stubs.telegram.accepted if a["signal_id"] == buy.signal_id
    )
    assert telegram["text"].splitlines()[0] == "🟢 BUY SPX 1D p=0.61"
    assert f"model SPX-direction-logreg v{buy.model_version}" in telegram["text"]
    rows = await notifications(settings)
    assert {(r.destination, r.signal_id, r.status) for r in rows} == {
        (d, s, "delivered")
        for d, ids in (
            ("webhook-1", everyone),
            ("telegram", everyone),
            ("discord", {buy.signal_id: 1, sell.signal_id: 1}),
        )
        for s in ids
    }


async def test_failures_and_throttling_are_retried_then_a_destination_that_keeps_failing_is_parked(
    kafka_settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    stubs: Destinations,
) -> None:
    settings = configured(kafka_settings, stubs, notifier_park_after_seconds=3.0)
    stubs.webhook.fail(503, 502)
    stubs.telegram.fail(429, retry_after="1")
    stubs.discord.fail(*[500] * 100)  # down for good
    buy = signal("SPX", "buy")
    async with running_notifier(settings):
        await send(settings, buy)

        async def settled() -> bool:
            rows = await notifications(settings)
            return len(rows) == 3

        assert await eventually(settled)
    assert stubs.webhook.ids() == {buy.signal_id: 1}
    assert len(stubs.webhook.requests) == 3
    assert stubs.telegram.ids() == {buy.signal_id: 1}
    first, second = stubs.telegram.requests
    assert second - first >= 1.0  # Retry-After honoured
    rows = {r.destination: r for r in await notifications(settings)}
    assert rows["webhook-1"].status == "delivered"
    assert rows["webhook-1"].attempts == 3
    assert rows["discord"].status == "parked"
    assert rows["discord"].last_error.startswith("HTTP 500")
    assert rows["discord"].attempts == len(stubs.discord.requests) > 1
    assert stubs.discord.accepted == []

    stubs.discord.script.clear()  # the destination recovers
    results = await retry_parked(settings, destination_names=["discord"])
    assert [(r.destination, r.status) for r in results] == [("discord", "delivered")]
    assert stubs.discord.ids() == {buy.signal_id: 1}
    assert {r.destination: r.status for r in await notifications(settings)}[
        "discord"
    ] == "delivered"
    assert await retry_parked(settings) == []  # nothing parked any more


async def test_a_refusal_is_parked_at_once_with_its_reason(
    kafka_settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    stubs: Destinations,
) -> None:
    settings = configured(
        kafka_settings,
        stubs,
        telegram_chat_id="-999",
        signal_webhook_urls=[],
        discord_webhook_url=None,
    )
    async with running_notifier(settings):
        await send(settings, signal("SPX", "sell"))

        async def parked() -> bool:
            return bool(await notifications(settings, parked_only=True))

        assert await eventually(parked)
    (row,) = await notifications(settings)
    assert (row.destination, row.status, row.attempts) == ("telegram", "parked", 1)
    assert "HTTP 400" in (row.last_error or "")
    assert "chat not found" in (row.last_error or "")
