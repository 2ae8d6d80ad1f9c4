"""The whole path: TradingView POST -> webhook receiver -> Kafka -> consumer -> signal on
`itff.signals` (read with a plain aiokafka consumer) and in SQLite, plus the bar."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Settings
from consumers.runner import running_consumer
from producers.app import create_app
from storage.tables import Bar
from tests.support.consumer import (
    SEED_BARS,
    count_rows,
    eventually,
    publish_champions,
    read_topic,
    sample_bars,
    seed_bars,
    signal_rows,
    signals_of,
)

pytestmark = pytest.mark.kafka


def tradingview_body(settings: Settings, time: Any, row: Any) -> dict[str, Any]:
    """The alert message of the README, as TradingView fills it in."""
    return {
        "passphrase": settings.tradingview_passphrase.get_secret_value(),
        "ticker": "SPX",
        "exchange": "SP",
        "interval": "D",  # TradingView's spelling of 1D
        "time": time.isoformat().replace("+00:00", "Z"),
        "open": row.open,
        "high": row.high,
        "low": row.low,
        "close": row.close,
        "volume": row.volume,
        "action": "buy",
    }


async def test_a_tradingview_alert_comes_out_as_one_signal_per_champion(
    kafka_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    settings = kafka_settings
    bars = sample_bars("SPX")
    champions = publish_champions(settings, "SPX")
    await seed_bars(session_factory, "SPX", bars.iloc[:SEED_BARS])
    time, row = next(bars.iloc[SEED_BARS : SEED_BARS + 1].iterrows())

    async with running_consumer(settings), TestClient(TestServer(create_app(settings))) as client:
        body = tradingview_body(settings, time, row)
        response = await client.post("/webhook/tradingview", json=body)
        assert response.status == 202, await response.text()
        alert_id = (await response.json())["alert_id"]
        retry = await client.post("/webhook/tradingview", json=body)  # TradingView resends
        # a resend is answered as the duplicate of the first alert, not taken as a new one
        assert retry.status == 200, await retry.text()
        assert await retry.json() == {"alert_id": alert_id, "status": "duplicate"}
        values = await read_topic(
            settings.bootstrap,
            settings.topics.signals,
            until=lambda v: len({s.model_key for s in signals_of(v)}) >= len(champions),
        )

        async def stored() -> bool:
            return len(await signal_rows(session_factory)) >= len(champions)

        assert await eventually(stored)

    signals = signals_of(values)
    assert {s.model_key for s in signals} == set(champions)
    assert {s.alert_id for s in signals} == {alert_id}
    assert {(s.symbol, s.interval, s.bar_time) for s in signals} == {("SPX", "1D", time)}
    assert all(s.latency_ms > 0 for s in signals)
    rows = await signal_rows(session_factory)
    assert sorted((r.alert_id, r.model_key) for r in rows) == sorted(
        (alert_id, key) for key in champions
    )
    assert await count_rows(session_factory, Bar) == SEED_BARS + 1
