"""Promotion and rollback events reach a running consumer through the real broker and change the
model version in the signals it emits."""

from __future__ import annotations

import pytest

from bot.artifacts import registry_from_settings
from bot.kafka import ModelEventPublisher
from bot.pipeline import ChampionSwitch
from consumers.runner import running_consumer
from tests.support.consumer import (
    SEED_BARS,
    alerts_for,
    eventually,
    fit_bundle,
    produce_alerts,
    publish_champions,
    read_topic,
    sample_bars,
    seed_bars,
    signals_of,
)

pytestmark = pytest.mark.kafka
KEY = "SPX-direction-logreg"


async def test_promotion_and_rollback_switch_the_version_in_the_signals(
    kafka_settings, session_factory
) -> None:
    settings = kafka_settings
    bars = sample_bars("SPX")
    publish_champions(settings, "SPX", lines=(("direction", "logreg"),), version="v1")
    await seed_bars(session_factory, "SPX", bars.iloc[:SEED_BARS])
    stream = alerts_for("SPX", bars.iloc[SEED_BARS : SEED_BARS + 15])
    before, promoted, rolled_back = stream[:5], stream[5:10], stream[10:]
    registry = registry_from_settings(settings)
    challenger = fit_bundle(
        bars.iloc[100:900], symbol="SPX", target="direction", model_type="logreg", version="v2"
    )

    async def signals_for(count: int) -> list:
        values = await read_topic(
            settings.bootstrap, settings.topics.signals, until=lambda v: len(v) >= count
        )
        return signals_of(values)

    async with running_consumer(settings, outcomes=False) as consumer:

        async def serving(version: str) -> bool:
            return consumer.models.served_versions().get(KEY) == version

        async with ModelEventPublisher(settings) as events:
            switch = ChampionSwitch(session_factory, registry, events)
            await produce_alerts(settings.bootstrap, settings.topics.alerts, before)
            assert len(await signals_for(5)) >= 5

            published = registry.publish(challenger)
            await switch.promote(
                key=KEY, version="v2", sha256=published.sha256,
                previous="v1", reason="test: better challenger", metrics={"accuracy": 0.6},
            )  # fmt: skip
            assert await eventually(lambda: serving("v2"))
            await produce_alerts(settings.bootstrap, settings.topics.alerts, promoted)
            assert len(await signals_for(10)) >= 10

            assert await switch.rollback(key=KEY) == "v1"
            assert await eventually(lambda: serving("v1"))
            await produce_alerts(settings.bootstrap, settings.topics.alerts, rolled_back)
            signals = await signals_for(15)

    version_of = {signal.alert_id: signal.model_version for signal in signals}
    assert [version_of[a.alert_id] for a in before] == ["v1"] * 5
    assert [version_of[a.alert_id] for a in promoted] == ["v2"] * 5
    assert [version_of[a.alert_id] for a in rolled_back] == ["v1"] * 5
