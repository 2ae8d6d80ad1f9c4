"""The duplicate window: alert ids accepted within the last `ITFF_DEDUPE_TTL_SECONDS`.

An id is remembered only once its alert was accepted (published or queued), so a request answered
503 can be retried. Concurrent requests with the same id are serialised: the second waits for the
first and is then answered as a duplicate if the first was accepted.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from cachetools import TTLCache

DEFAULT_CAPACITY = 200_000


class DuplicateWindow:
    def __init__(self, *, ttl_seconds: float, capacity: int = DEFAULT_CAPACITY) -> None:
        self._seen: TTLCache[str, bool] = TTLCache(maxsize=capacity, ttl=ttl_seconds)
        self._busy: dict[str, list[asyncio.Future[None]]] = {}

    def seen(self, alert_id: str) -> bool:
        return alert_id in self._seen

    def remember(self, alert_id: str) -> None:
        self._seen[alert_id] = True

    def claim(self, alert_id: str) -> Claim:
        """`async with window.claim(id) as new`: True when the id is new; while held, other
        claims of the same id wait."""
        return Claim(self, alert_id)

    def __len__(self) -> int:
        return len(self._seen)


class Claim:
    """One claim of an alert id (a plain class: this is on every request's path)."""

    __slots__ = ("_alert_id", "_held", "_window")

    def __init__(self, window: DuplicateWindow, alert_id: str) -> None:
        self._window = window
        self._alert_id = alert_id
        self._held = False

    async def __aenter__(self) -> bool:
        busy = self._window._busy  # noqa: SLF001 - the window's own helper
        while (waiters := busy.get(self._alert_id)) is not None:
            waiter = asyncio.get_running_loop().create_future()
            waiters.append(waiter)
            await waiter
        if self._window.seen(self._alert_id):
            return False
        busy[self._alert_id] = []
        self._held = True
        return True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self._held:
            return
        for waiter in self._window._busy.pop(self._alert_id):  # noqa: SLF001
            if not waiter.done():
                waiter.set_result(None)
