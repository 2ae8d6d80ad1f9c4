"""Klines from a Binance-compatible REST API over aiohttp: paging, retries, rate limits.

`GET {base}/api/v3/klines?symbol=&interval=&startTime=&endTime=&limit=1000` returns at most
`limit` rows `[open_time_ms, "open", "high", "low", "close", "volume", close_time_ms, ...]`. Pages
are fetched forward from `startTime` (the next page starts one millisecond after the last open
time) until the end or a short page. Bars that have not closed yet are dropped.

* HTTP 429 (rate limit): wait `Retry-After` seconds (default: the backoff) and retry; when the
  wait would exceed `max_wait` or retries run out, `TransientError` says when to come back.
* HTTP 418 (IP banned for ignoring 429s): `TransientError` at once, with the ban's Retry-After.
* HTTP 5xx, timeouts and connection errors: exponential backoff with jitter, then `TransientError`.
* Other 4xx (unknown symbol, bad interval): `BadInput` with Binance's own message.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pandas as pd

from bot.contracts import BadInput, TransientError
from bot.core import binance_interval, parse_interval

KLINES_PATH = "/api/v3/klines"
PAGE_LIMIT = 1000
HTTP_SERVER_ERROR = 500
HTTP_TOO_MANY = 429
HTTP_BANNED = 418
HTTP_BAD_REQUEST = 400
COLUMNS = ("open_time", "open", "high", "low", "close", "volume", "close_time")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 5
    backoff: float = 0.5  # first wait in seconds, doubled each retry, plus up to 25 % jitter
    max_wait: float = 60.0  # longest Retry-After we are willing to sleep through
    timeout: float = 10.0  # per request


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def _retry_after(response: aiohttp.ClientResponse, default: float) -> float:
    try:
        return float(response.headers.get("Retry-After", default))
    except ValueError:
        return default


async def _error_text(response: aiohttp.ClientResponse) -> str:
    try:
        body = await response.json(content_type=None)
        return str(body.get("msg", body)) if isinstance(body, dict) else str(body)
    except (ValueError, aiohttp.ClientError):
        return (await response.text())[:200]


@dataclass(frozen=True, slots=True)
class _Retry:
    reason: str
    wait: float | None = None  # the server's Retry-After, if it sent one


class _Pager:
    """One paged download: owns the session, the policy and the injected sleep."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, policy: RetryPolicy, sleep: Sleep
    ) -> None:
        self.session, self.url, self.policy, self.sleep = session, url, policy, sleep

    async def page(self, params: dict[str, str]) -> list[list[Any]]:
        attempt = 0
        while True:
            try:
                outcome = await self._request(params)
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                outcome = _Retry(f"{type(exc).__name__} from {self.url}")
            if not isinstance(outcome, _Retry):
                return outcome
            wait = self._wait(outcome, attempt)
            await self.sleep(wait)
            attempt += 1

    def _wait(self, outcome: _Retry, attempt: int) -> float:
        backoff = self.policy.backoff * 2**attempt * (1 + random.random() / 4)
        wait = backoff if outcome.wait is None else outcome.wait
        if attempt >= self.policy.retries or wait > self.policy.max_wait:
            raise TransientError(
                f"Binance klines failed after {attempt + 1} attempts ({outcome.reason}); "
                f"retry in {wait:.0f} s or later"
            )
        return wait

    async def _request(self, params: dict[str, str]) -> list[list[Any]] | _Retry:
        timeout = aiohttp.ClientTimeout(total=self.policy.timeout)
        async with self.session.get(self.url, params=params, timeout=timeout) as response:
            if response.status == HTTP_BANNED:
                seconds = _retry_after(response, self.policy.max_wait)
                raise TransientError(
                    f"Binance banned this IP (HTTP 418) for {seconds:.0f} s after rate-limit "
                    "violations; wait that long and lower the request rate"
                )
            if response.status == HTTP_TOO_MANY:
                return _Retry(
                    "rate limit hit, HTTP 429; lower the request rate",
                    _retry_after(response, -1.0) if "Retry-After" in response.headers else None,
                )
            if response.status >= HTTP_SERVER_ERROR:
                return _Retry(f"HTTP {response.status}")
            if response.status >= HTTP_BAD_REQUEST:
                raise BadInput(
                    f"Binance refused the request for {params.get('symbol')} "
                    f"({response.status}: {await _error_text(response)}); check the symbol "
                    "and interval"
                )
            body = await response.json(content_type=None)
            if not isinstance(body, list):
                raise BadInput(f"Binance klines answer is not a list of rows: {str(body)[:200]}")
            return body


def _to_ms(when: pd.Timestamp) -> int:
    return int(when.value // 1_000_000)


async def fetch_klines(
    base_url: str,
    symbol: str,
    *,
    interval: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    policy: RetryPolicy | None = None,
    sleep: Sleep = _sleep,
    session: aiohttp.ClientSession | None = None,
    page_limit: int = PAGE_LIMIT,
) -> pd.DataFrame:
    """All closed bars of `[start, end)` as a raw frame `time, open, high, low, close, volume`."""
    url = base_url.rstrip("/") + KLINES_PATH
    params = {"symbol": symbol.upper(), "interval": binance_interval(interval)}
    owned = session is None
    client = session or aiohttp.ClientSession()
    pager = _Pager(client, url, policy or RetryPolicy(), sleep)
    rows: list[list[Any]] = []
    cursor, stop = _to_ms(start), _to_ms(end)
    try:
        while cursor < stop:
            query = params | {"startTime": str(cursor), "endTime": str(stop - 1)}
            page = await pager.page(query | {"limit": str(page_limit)})
            rows.extend(page)
            if len(page) < page_limit:
                break
            cursor = int(page[-1][0]) + 1
    finally:
        if owned:
            await client.close()
    return _frame(rows, now=pd.Timestamp.now(tz="UTC"))


def _frame(rows: list[list[Any]], *, now: pd.Timestamp) -> pd.DataFrame:
    try:
        frame = pd.DataFrame([row[: len(COLUMNS)] for row in rows], columns=list(COLUMNS))
    except (ValueError, TypeError) as exc:
        raise BadInput(f"Binance klines are not in the expected row format: {exc}") from exc
    frame = frame[pd.to_numeric(frame["close_time"]) < _to_ms(now)]  # drop the open bar
    frame["time"] = pd.to_datetime(pd.to_numeric(frame["open_time"]), unit="ms", utc=True)
    return frame.drop(columns=["open_time", "close_time"])[
        ["time", "open", "high", "low", "close", "volume"]
    ]


def default_window(
    interval: str, bars: int, *, now: pd.Timestamp
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The last `bars` bars ending now."""
    return now - bars * parse_interval(interval), now


def load_binance(
    base_url: str,
    symbol: str,
    *,
    interval: str,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    bars: int = 5000,
) -> pd.DataFrame:
    """Blocking wrapper for scripts and the CLI (async callers await `fetch_klines`)."""
    first, last = default_window(interval, bars, now=pd.Timestamp.now(tz="UTC"))
    return asyncio.run(
        fetch_klines(base_url, symbol, interval=interval, start=start or first, end=end or last)
    )
