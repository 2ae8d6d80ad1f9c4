"""The receiver refuses to rewrite history: 409 for a changed bar older than the revision window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.contracts import Settings
from storage.bars import BarRecord, upsert_bars
from storage.db import create_engine, create_session_factory
from tests.support.webhook import MakeReceiver, tv_message

URL = "/webhook/tradingview"


async def _store_hourly_bars(settings: Settings, times: list[datetime]) -> None:
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            bars = [
                BarRecord("SPX", "1h", t, 100.0, 110.0, 95.0, 105.0, 1000.0, "tradingview")
                for t in times
            ]
            await upsert_bars(session=session, bars=bars)
    finally:
        await engine.dispose()


async def test_a_changed_old_bar_is_409_a_resend_or_a_recent_revision_is_accepted(
    receiver: MakeReceiver, settings: Settings
) -> None:
    client = await receiver(revision_window_bars=3)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    times = [now - timedelta(hours=h) for h in range(10, 0, -1)]
    await _store_hourly_bars(settings, times)
    old, recent = times[2], times[-1]

    changed_old = await client.post(
        URL, json=tv_message(interval="60", time=old.isoformat(), close=106.0)
    )
    assert changed_old.status == 409
    body = await changed_old.json()
    assert body["error"] == "conflict"
    assert "ITFF_REVISION_WINDOW_BARS" in body["detail"]

    resend = await client.post(URL, json=tv_message(interval="60", time=old.isoformat()))
    assert resend.status == 202  # the same values: nothing is rewritten
    revised = await client.post(
        URL, json=tv_message(interval="1h", time=recent.isoformat(), close=106.0)
    )
    assert revised.status == 202
    unknown = await client.post(
        URL, json=tv_message(interval="60", time=(old - timedelta(days=30)).isoformat())
    )
    assert unknown.status == 202  # a bar never stored is new history, not a rewrite
