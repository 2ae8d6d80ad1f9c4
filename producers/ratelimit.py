"""Rate limits: authenticated traffic per credential, unauthenticated failures per address.

Authentication comes before counting, so that nobody can spend someone else's budget:

- a request that authenticates counts against its **credential** (`webhook` limit: the
  TradingView passphrase, or the signing secret that matched; `api` limit: the API token). Junk
  from anywhere never touches that budget, and clients behind one proxy address never share it;
- a request that fails before it authenticated (bad JSON, missing or wrong passphrase, bad
  signature, wrong token) counts against its **address** (`auth_failure` limit). Over that budget
  the failure is answered 429 with Retry-After instead of 400/401: the flooder is told to back
  off, and a correct request from the same address (TradingView's four addresses are shared by
  every TradingView user) is still served, since only failures are refused.

The `limits` library, sliding window counter, in memory. Not the moving-window strategy: its
in-memory storage expires events through a thread hop while holding the client's lock, which
serialised every request of a busy client (measured: 3x slower).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from producers.responses import ApiError

AUTH_FAILURE = "auth_failure"
SERVER_ERROR = 500


class RateLimits:
    """One limiter, several named limits: `webhook`, `api` (per credential) and
    `auth_failure` (per address)."""

    def __init__(self, limits: dict[str, str]) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._items: dict[str, RateLimitItem] = {name: parse(spec) for name, spec in limits.items()}
        self._specs = limits

    async def hit(self, name: str, key: str, *, who: str | None = None) -> None:
        """Count one request for `key`; `ApiError` 429 with Retry-After once over the limit."""
        refusal = await self._count(name, key, who or key)
        if refusal is not None:
            raise refusal

    async def _count(self, name: str, key: str, who: str) -> ApiError | None:
        item = self._items[name]
        if await self._limiter.hit(item, name, key):
            return None
        stats = await self._limiter.get_window_stats(item, name, key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        what = _WHAT.get(name, "for")
        return ApiError(
            429,
            "rate_limited",
            f"more than {self._specs[name]} {what} {who}; retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )

    @asynccontextmanager
    async def unauthenticated(self, address: str) -> AsyncIterator[None]:
        """Wrap what runs before a request authenticated: each 4xx raised inside counts against
        `address`'s failure budget, and once over it the answer is 429 instead."""
        try:
            yield
        except ApiError as exc:
            if exc.status < SERVER_ERROR and AUTH_FAILURE in self._items:
                refusal = await self._count(AUTH_FAILURE, address, address)
                if refusal is not None:
                    raise refusal from exc
            raise


_WHAT = {
    "webhook": "alerts for",
    "api": "requests for",
    AUTH_FAILURE: "failed (unauthenticated) requests from",
}
