"""The duplicate window: alert ids accepted within the last `ITFF_DEDUPE_TTL_SECONDS`.

An id is remembered only once its alert was accepted (published or queued), so a request answered
503 can be retried. Concurrent requests with the same id are serialised: the second waits for the
first and is then answered as a duplicate if the first was accepted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cachetools import TTLCache

DEFAULT_CAPACITY = 200_000


class DuplicateWindow:
    def __init__(self, *, ttl_seconds: float, capacity: int = DEFAULT_CAPACITY) -> None:
        self._seen: TTLCache[str, bool] = TTLCache(maxsize=capacity, ttl=ttl_seconds)
        self._busy: dict[str, asyncio.Event] = {}

    def seen(self, alert_id: str) -> bool:
        return alert_id in self._seen

    def remember(self, alert_id: str) -> None:
        self._seen[alert_id] = True

    @asynccontextmanager
    async def claim(self, alert_id: str) -> AsyncIterator[bool]:
        """Yields True when the id is new; while held, other claims of the same id wait."""
        while (event := self._busy.get(alert_id)) is not None:
            await event.wait()
        if self.seen(alert_id):
            yield False
            return
        self._busy[alert_id] = done = asyncio.Event()
        try:
            yield True
        finally:
            del self._busy[alert_id]
            done.set()

    def __len__(self) -> int:
        return len(self._seen)
