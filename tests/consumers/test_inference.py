"""The inference consumer on a real broker and real SQLite: signals, idempotency, dead letters."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Alert, Settings
from consumers.runner import running_consumer
from storage.tables import Bar
from tests.support.consumer import (
    SEED_BARS,
    alerts_for,
    count_rows,
    counted,
    dead_letters_of,
    eventually,
    fit_bundle,
    produce,
    produce_alerts,
    publish_champions,
    read_topic,
    registry,
    sample_bars,
    seed_bars,
    signal_rows,
    signals_of,
)
from tests.support.postgres import both_stores

pytestmark = [pytest.mark.kafka, both_stores]


async def test_alerts_become_one_signal_per_champion_once_even_when_published_twice(
    kafka_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    settings = kafka_settings
    bars = sample_bars("SPX")
    published = publish_champions(settings, "SPX")
    await seed_bars(session_factory, "SPX", bars.iloc[:SEED_BARS])
    stream = alerts_for("SPX", bars.iloc[SEED_BARS : SEED_BARS + 20])
    expected = len(stream) * len(published)

    before = counted("itff_consumer_signals_total", redelivered="false")
    async with running_consumer(settings):
        await produce_alerts(settings.bootstrap, settings.topics.alerts, stream)
        await produce_alerts(settings.bootstrap, settings.topics.alerts, stream[:5])  # a retry
        values = await read_topic(
            settings.bootstrap,
            settings.topics.signals,
            until=lambda v: (
                len({s.signal_id for s in signals_of(v)}) >= expected
                and len(v) >= expected + 5 * len(published)
            ),
        )

        async def stored() -> bool:
            return len(await signal_rows(session_factory)) >= expected

        assert await eventually(stored)

    signals = signals_of(values)
    assert {(s.alert_id, s.model_key) for s in signals} == {
        (a.alert_id, k) for a in stream for k in published
    }
    # the retried alerts were re-published with the same signal ids, not predicted again
    assert len({s.signal_id for s in signals}) == expected
    rows = await signal_rows(session_factory)
    assert len(rows) == expected
    assert {r.model_version for r in rows} == {"v1"}
    assert all(r.latency_ms >= 0 and r.horizon == 1 for r in rows)
    assert all(s.symbol == "SPX" and s.interval == "1D" for s in signals)
    # schema_version 2: each signal explains its action with the score and the thresholds
    champions = {key: registry(settings).meta(key)["thresholds"] for key in published}
    for s in signals:
        assert s.schema_version == 2
        assert (s.buy_threshold, s.sell_threshold) == (
            champions[s.model_key]["buy"],
            champions[s.model_key]["sell"],
        )
        assert s.score is not None
        assert s.score == (s.probability if s.target == "direction" else s.prediction)
        expected_action = (
            "hold" if s.ood else "buy" if s.score >= s.buy_threshold
            else "sell" if s.score <= s.sell_threshold else "hold"
        )  # fmt: skip
        assert s.action == expected_action
    by_id = {s.signal_id: s for s in signals}
    assert all((r.score, r.buy_threshold) == (by_id[r.signal_id].score,
               by_id[r.signal_id].buy_threshold) for r in rows)  # fmt: skip
    assert await count_rows(session_factory, Bar) == SEED_BARS + len(stream)
    assert counted("itff_consumer_signals_total", redelivered="false") - before == expected


async def test_an_alert_for_a_symbol_without_models_stores_its_bar_and_is_dead_lettered(
    kafka_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    settings = kafka_settings
    publish_champions(settings, "SPX", lines=[("direction", "logreg")])
    ndx = alerts_for("NDX", sample_bars("NDX").iloc[:3])
    before = counted("itff_consumer_dead_letters_total", reason="no_model")
    async with running_consumer(settings):
        await produce_alerts(settings.bootstrap, settings.topics.alerts, [*ndx, ndx[0]])
        values = await read_topic(
            settings.bootstrap, settings.topics.dlq, until=lambda v: len(v) >= len(ndx) + 1
        )
    letters = dead_letters_of(values)
    assert {letter["reason"] for letter in letters} == {"no_model"}
    assert {letter["stage"] for letter in letters} == {"route"}
    assert await count_rows(session_factory, Bar) == len(ndx)  # the repeat did not add a row
    assert counted("itff_consumer_dead_letters_total", reason="no_model") - before == len(ndx) + 1


async def test_each_dead_letter_reason_keeps_the_original_bytes_and_the_consumer_going(
    kafka_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    settings = kafka_settings
    bars = sample_bars("SPX")
    line = [("direction", "logreg")]
    publish_champions(settings, "SPX", lines=line)
    publish_champions(settings, "DJI", lines=line, train=bars.iloc[:800])
    bogus = fit_bundle(
        bars.iloc[:800], symbol="NDX", target="direction", model_type="logreg", version="v1"
    )
    names = (*bogus.feature_names[:-1], "not_a_feature")
    registry(settings).publish(dataclasses.replace(bogus, feature_names=names))
    registry(settings).promote(bogus.key, "v1")
    await seed_bars(session_factory, "SPX", bars.iloc[:SEED_BARS])
    await seed_bars(session_factory, "NDX", bars.iloc[:SEED_BARS])
    await seed_bars(session_factory, "DJI", bars.iloc[:50])  # shorter than the warm-up
    invalid = json.loads(alerts_for("SPX", bars.iloc[SEED_BARS:])[0].model_dump_json())
    invalid["high"] = invalid["low"] / 2
    good = alerts_for("SPX", bars.iloc[SEED_BARS : SEED_BARS + 1])
    records = [
        (b"SPX", b"{not json"),
        (b"SPX", json.dumps(invalid).encode()),
        *encoded(alerts_for("DJI", bars.iloc[50:51])),
        *encoded(alerts_for("NDX", bars.iloc[SEED_BARS : SEED_BARS + 1])),
        *encoded(alerts_for("AAPL", bars.iloc[:1])),
        *encoded(good),
    ]
    async with running_consumer(settings):
        await produce(settings.bootstrap, settings.topics.alerts, records)
        values = await read_topic(
            settings.bootstrap, settings.topics.dlq, until=lambda v: len(v) >= 5
        )
        signals = await read_topic(
            settings.bootstrap, settings.topics.signals, until=lambda v: len(v) >= 1
        )
    letters = {letter["reason"]: letter for letter in dead_letters_of(values)}
    assert {reason: letter["stage"] for reason, letter in letters.items()} == {
        "undecodable": "decode",
        "invalid_bar": "validate",
        "insufficient_history": "features",
        "prediction_failed": "predict",
        "no_model": "route",
    }
    assert "inconsistent bar" in str(letters["invalid_bar"]["error"])
    assert "not_a_feature" in str(letters["prediction_failed"]["error"])
    for letter in letters.values():
        assert letter["topic"] == settings.topics.alerts
        assert isinstance(letter["offset"], int)
    assert base64.b64decode(str(letters["undecodable"]["original"])) == b"{not json"
    # the consumer kept going: the good alert after the bad ones has its signal
    assert [s.alert_id for s in signals_of(signals)] == [good[0].alert_id]
    assert await count_rows(session_factory, Bar) == 2 * SEED_BARS + 50 + 4


def encoded(alerts: list[Alert]) -> list[tuple[bytes, bytes]]:
    return [(a.symbol.encode(), a.model_dump_json().encode()) for a in alerts]


async def test_index_alerts_without_volume_get_signals_and_store_a_missing_volume(
    kafka_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """TradingView sends `"volume": NaN` for indices: stored as NULL, a neutral feature."""
    settings = kafka_settings
    bars = sample_bars("NDX")
    published = publish_champions(settings, "NDX")
    await seed_bars(session_factory, "NDX", bars.iloc[:SEED_BARS])
    stream = [
        alert.model_copy(update={"volume": None})
        for alert in alerts_for("NDX", bars.iloc[SEED_BARS : SEED_BARS + 5])
    ]
    expected = len(stream) * len(published)
    async with running_consumer(settings):
        await produce_alerts(settings.bootstrap, settings.topics.alerts, stream)
        values = await read_topic(
            settings.bootstrap, settings.topics.signals, until=lambda v: len(v) >= expected
        )
    assert {(s.alert_id, s.model_key) for s in signals_of(values)} == {
        (a.alert_id, k) for a in stream for k in published
    }
    async with session_factory() as session:
        volumes = (
            await session.scalars(
                select(Bar.volume).where(Bar.symbol == "NDX").order_by(Bar.time.desc()).limit(6)
            )
        ).all()
    assert volumes[:5] == [None] * 5
    assert volumes[5] is not None
