"""The receiver's guard on history: a stored bar is revised only while it is among the last few.

The consumer applies the same rule (`storage.bars.verdict`) when it stores the bar, and is the
authority; the receiver answers 409 up front so that the sender learns why. What it costs:

- a live alert (its bar within the last `window` intervals of the clock, so fewer than `window`
  bars can follow it) needs nothing;
- an alert for a bar after the newest stored one of its symbol and interval (a replay, a
  backfill through the webhook) needs nothing either: that time is read once per key and kept
  `LATEST_TTL_S` (the consumer moves it on meanwhile; a value too old only costs more reads);
- only an alert at or before that time is looked up (one indexed read).
"""

from __future__ import annotations

import time
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Alert, utcnow
from bot.contracts.bars import interval_length
from producers.responses import ApiError
from storage.bars import bar_record, latest_bar_time, stored_bar, verdict

LATEST_TTL_S = 5.0


class HistoryGuard:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, window: int) -> None:
        self._sessions = sessions
        self._window = window
        self._latest: dict[tuple[str, str], tuple[datetime | None, float]] = {}

    async def check(self, alert: Alert) -> None:
        """`ApiError` 409 when the alert would rewrite a bar older than the revision window."""
        if alert.bar_time > utcnow() - interval_length(alert.interval) * self._window:
            return
        bar = bar_record(alert)
        latest = await self._latest_stored(bar.symbol, bar.interval)
        if latest is None or bar.time > latest:
            return
        async with self._sessions() as session:
            stored = await stored_bar(session=session, key=bar.key, window=self._window)
        if verdict(bar, stored, self._window) == "refused":
            raise ApiError(
                409,
                "conflict",
                f"{bar.symbol} {bar.interval} {bar.time.isoformat()} is stored with other values "
                f"and is not among its last {self._window} bars (ITFF_REVISION_WINDOW_BARS): "
                "history is not rewritten; send corrections while the bar is recent",
            )

    async def _latest_stored(self, symbol: str, interval: str) -> datetime | None:
        cached = self._latest.get((symbol, interval))
        now = time.monotonic()
        if cached is not None and now - cached[1] < LATEST_TTL_S:
            return cached[0]
        async with self._sessions() as session:
            latest = await latest_bar_time(session=session, symbol=symbol, interval=interval)
        self._latest[(symbol, interval)] = (latest, now)
        return latest
