"""The receiver's guard on history: a stored bar is revised only while it is among the last few.

The consumer applies the same rule (`storage.bars.verdict`) when it stores the bar, and is the
authority; the receiver answers 409 up front so that the sender learns why. A live alert (its
bar within the last `window` intervals of the clock, so fewer than `window` bars can follow it)
needs no database read; an older bar is looked up once (one indexed read).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Alert, utcnow
from bot.contracts.bars import interval_length
from producers.responses import ApiError
from storage.bars import bar_record, stored_bar, verdict


class HistoryGuard:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, window: int) -> None:
        self._sessions = sessions
        self._window = window

    async def check(self, alert: Alert) -> None:
        """`ApiError` 409 when the alert would rewrite a bar older than the revision window."""
        if alert.bar_time > utcnow() - interval_length(alert.interval) * self._window:
            return
        bar = bar_record(alert)
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
