"""The consumer is the authority on history (real broker, real SQLite): a recent bar may be
revised and the replaced values are kept; an older one is never rewritten; a bar time outside
the plausible range at the alert's `received_at` is a dead letter."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Alert, Settings
from consumers.runner import running_consumer
from storage.tables import Bar, BarRevision
from tests.support.consumer import (
    SEED_BARS,
    alerts_for,
    counted,
    dead_letters_of,
    produce_alerts,
    publish_champions,
    read_topic,
    sample_bars,
    seed_bars,
    signals_of,
)
from tests.support.postgres import both_stores

pytestmark = [pytest.mark.kafka, both_stores]


def _changed(alert: Alert) -> Alert:
    """The same bar with another close (still within its low and high)."""
    close = alert.low + (alert.high - alert.low) * 0.25
    assert close != alert.close
    return alert.model_copy(update={"close": close})


async def _bar(session_factory: async_sessionmaker[AsyncSession], alert: Alert) -> Bar:
    async with session_factory() as session:
        row = await session.scalar(
            select(Bar).where(Bar.symbol == alert.symbol, Bar.time == alert.bar_time)
        )
        assert row is not None
        return row


async def test_recent_revisions_are_kept_with_their_old_values_old_ones_are_refused(
    kafka_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    settings = kafka_settings.model_copy(update={"revision_window_bars": 3})
    bars = sample_bars("SPX")
    published = publish_champions(settings, "SPX")
    await seed_bars(session_factory, "SPX", bars.iloc[:SEED_BARS])
    [last] = alerts_for("SPX", bars.iloc[SEED_BARS - 1 : SEED_BARS], prefix="rev")
    [old] = alerts_for("SPX", bars.iloc[SEED_BARS - 10 : SEED_BARS - 9], prefix="old")
    [fresh] = alerts_for("SPX", bars.iloc[SEED_BARS : SEED_BARS + 1], prefix="new")
    future = fresh.model_copy(
        update={"alert_id": "future-SPX-1", "bar_time": fresh.received_at + timedelta(days=9)}
    )
    revised, rewrite = _changed(last), _changed(old)
    revisions_before = counted("itff_consumer_bar_revisions_total")

    async with running_consumer(settings):
        await produce_alerts(
            settings.bootstrap, settings.topics.alerts, [revised, rewrite, future, fresh]
        )
        signals = signals_of(
            await read_topic(
                settings.bootstrap,
                settings.topics.signals,
                until=lambda v: len(v) >= 2 * len(published),
            )
        )
        letters = dead_letters_of(
            await read_topic(settings.bootstrap, settings.topics.dlq, until=lambda v: len(v) >= 2)
        )

    assert {(s.alert_id, s.model_key) for s in signals} == {
        (a.alert_id, k) for a in (revised, fresh) for k in published
    }
    reasons = {letter["reason"]: letter for letter in letters}
    assert set(reasons) == {"revision_refused", "out_of_range"}
    assert reasons["revision_refused"]["stage"] == "validate"
    assert "ITFF_REVISION_WINDOW_BARS" in str(reasons["revision_refused"]["error"])
    assert "the allowed range is" in str(reasons["out_of_range"]["error"])

    assert (await _bar(session_factory, last)).close == revised.close  # revised
    assert (await _bar(session_factory, old)).close == old.close  # not rewritten
    async with session_factory() as session:
        [kept] = (await session.scalars(select(BarRevision))).all()
        assert (kept.time, kept.close, kept.source) == (last.bar_time, last.close, "test")
        assert kept.revised_by == "replay"
        future_rows = await session.scalars(select(Bar).where(Bar.time == future.bar_time))
        assert future_rows.all() == []
    assert counted("itff_consumer_bar_revisions_total") - revisions_before == 1
