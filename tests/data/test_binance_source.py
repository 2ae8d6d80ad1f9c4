"""The Binance klines source against a local aiohttp server serving recorded pages."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from aiohttp import web

from bot.contracts import BadInput, TransientError
from bot.data.binance import RetryPolicy, fetch_klines
from bot.data.validation import validate_bars

PAGES = Path(__file__).parent / "binance_pages"
START = pd.Timestamp("2024-03-01T00:00:00Z")
END = pd.Timestamp("2024-03-01T07:00:00Z")


def _page(name: str) -> list:
    return json.loads((PAGES / f"{name}.json").read_text())


ALL_ROWS = _page("page1") + _page("page2") + _page("page3")


class Exchange:
    """Serves the recorded rows by startTime/limit, after a script of failures."""

    def __init__(self, script: list[tuple[int, dict[str, str], str]] | None = None) -> None:
        self.script = list(script or [])
        self.requests: list[dict[str, str]] = []

    async def klines(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.query))
        if self.script:
            status, headers, body = self.script.pop(0)
            return web.Response(status=status, headers=headers, text=body)
        start, end = int(request.query["startTime"]), int(request.query["endTime"])
        limit = int(request.query["limit"])
        rows = [row for row in ALL_ROWS if start <= row[0] <= end][:limit]
        return web.json_response(rows)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def fake_sleep(sleeps):
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return sleep


async def _serve(aiohttp_server, exchange: Exchange) -> str:
    app = web.Application()
    app.router.add_get("/api/v3/klines", exchange.klines)
    server = await aiohttp_server(app)
    return str(server.make_url("/"))


async def _fetch(url, fake_sleep, **kwargs):
    return await fetch_klines(
        url,
        "btcusdt",
        interval="1h",
        start=START,
        end=END,
        sleep=fake_sleep,
        page_limit=3,
        policy=kwargs.pop("policy", RetryPolicy(retries=3, backoff=0.5, max_wait=30)),
        **kwargs,
    )


async def test_pages_forward_by_start_time_until_a_short_page(aiohttp_server, fake_sleep):
    exchange = Exchange()
    frame = await _fetch(await _serve(aiohttp_server, exchange), fake_sleep)
    assert len(frame) == 7
    assert [int(r["startTime"]) for r in exchange.requests] == [
        ALL_ROWS[0][0],
        ALL_ROWS[2][0] + 1,
        ALL_ROWS[5][0] + 1,
    ]
    assert exchange.requests[0]["symbol"] == "BTCUSDT"
    assert exchange.requests[0]["interval"] == "1h"
    assert exchange.requests[0]["limit"] == "3"
    bars, report = validate_bars(frame, symbol="BTCUSDT", interval="1h")
    assert report.clean
    assert bars.index[0] == START
    assert bars["close"].iloc[-1] == pytest.approx(float(ALL_ROWS[-1][4]))
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]


async def test_429_waits_retry_after_and_5xx_backs_off(aiohttp_server, fake_sleep, sleeps):
    limited = (PAGES / "rate_limited.json").read_text()
    exchange = Exchange([(429, {"Retry-After": "7"}, limited), (503, {}, "busy")])
    frame = await _fetch(await _serve(aiohttp_server, exchange), fake_sleep)
    assert len(frame) == 7
    assert sleeps[0] == 7.0  # the server's Retry-After
    assert 1.0 <= sleeps[1] <= 1.25  # backoff 0.5 * 2 ** 1 plus jitter
    assert len(exchange.requests) == 5


async def test_a_long_retry_after_fails_with_when_to_come_back(aiohttp_server, fake_sleep, sleeps):
    exchange = Exchange([(429, {"Retry-After": "120"}, "{}")])
    url = await _serve(aiohttp_server, exchange)
    with pytest.raises(TransientError, match=r"rate limit hit, HTTP 429.*retry in 120 s"):
        await _fetch(url, fake_sleep)
    assert sleeps == []


async def test_persistent_5xx_gives_up_after_the_retries(aiohttp_server, fake_sleep, sleeps):
    exchange = Exchange([(502, {}, "bad gateway")] * 10)
    url = await _serve(aiohttp_server, exchange)
    with pytest.raises(TransientError, match="HTTP 502"):
        await _fetch(url, fake_sleep)
    assert len(exchange.requests) == 4
    assert sleeps == sorted(sleeps)  # exponential


async def test_418_ban_is_reported_at_once(aiohttp_server, fake_sleep, sleeps):
    exchange = Exchange([(418, {"Retry-After": "300"}, "{}")])
    url = await _serve(aiohttp_server, exchange)
    with pytest.raises(TransientError, match=r"banned this IP.*300 s"):
        await _fetch(url, fake_sleep)
    assert len(exchange.requests) == 1


async def test_unknown_symbol_is_bad_input_with_binance_message(aiohttp_server, fake_sleep):
    body = (PAGES / "invalid_symbol.json").read_text()
    exchange = Exchange([(400, {"Content-Type": "application/json"}, body)])
    url = await _serve(aiohttp_server, exchange)
    with pytest.raises(BadInput, match="Invalid symbol"):
        await _fetch(url, fake_sleep)


async def test_unreachable_server_is_transient(fake_sleep, unused_tcp_port):
    url = f"http://127.0.0.1:{unused_tcp_port}"
    with pytest.raises(TransientError, match=r"failed after 2 attempts"):
        await _fetch(url, fake_sleep, policy=RetryPolicy(retries=1, backoff=0.01))
