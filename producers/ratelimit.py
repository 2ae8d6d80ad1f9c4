"""Rate limits per client address (the `limits` library, sliding window counter, in memory).

Not the moving-window strategy: its in-memory storage expires events through a thread hop while
holding the client's lock, which serialised every request of a busy client (measured: 3x slower).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from producers.responses import ApiError


class RateLimits:
    """One limiter, several named limits: `webhook` and `api`."""

    def __init__(self, limits: dict[str, str]) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._items: dict[str, RateLimitItem] = {name: parse(spec) for name, spec in limits.items()}
        self._specs = limits

    async def hit(self, name: str, client: str) -> None:
        """Count one request of `client`; `ApiError` 429 with Retry-After once over the limit."""
        item = self._items[name]
        if await self._limiter.hit(item, name, client):
            return
        stats = await self._limiter.get_window_stats(item, name, client)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise ApiError(
            429,
            "rate_limited",
            f"more than {self._specs[name]} from {client}; retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
