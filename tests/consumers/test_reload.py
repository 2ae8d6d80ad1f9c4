"""Hot reload on `itff.models` while alerts flow, and a tampered artifact refused."""

from __future__ import annotations

from collections import defaultdict

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import ModelEvent, Settings
from bot.kafka import ModelEventPublisher
from consumers.runner import running_consumer
from tests.support.consumer import (
    SEED_BARS,
    alerts_for,
    eventually,
    fit_bundle,
    produce_alerts,
    publish_champions,
    registry,
    sample_bars,
    seed_bars,
    signal_rows,
)
from tests.support.postgres import both_stores

pytestmark = [pytest.mark.kafka, both_stores]
LINES = [("direction", "logreg"), ("return", "ridge")]


async def test_a_promoted_version_is_served_without_a_gap_and_a_tampered_one_is_refused(
    kafka_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    settings = kafka_settings
    bars = sample_bars("SPX")
    keys = list(publish_champions(settings, "SPX", lines=LINES))
    await seed_bars(session_factory, "SPX", bars.iloc[:SEED_BARS])
    stream = alerts_for("SPX", bars.iloc[SEED_BARS : SEED_BARS + 60])
    first, second, third = stream[:20], stream[20:40], stream[40:]
    key = keys[0]
    store = registry(settings)

    async with running_consumer(settings) as consumer, ModelEventPublisher(settings) as events:
        await produce_alerts(settings.bootstrap, settings.topics.alerts, first)

        async def first_served() -> bool:
            return any(r.alert_id == first[0].alert_id for r in await signal_rows(session_factory))

        assert await eventually(first_served)
        # v2 of the first key is promoted while the rest of the first alerts are processed
        v2 = store.publish(
            fit_bundle(
                bars.iloc[200:1200],
                symbol="SPX",
                target="direction",
                model_type="logreg",
                version="v2",
            )
        )
        store.promote(key, "v2")
        await events.publish(
            ModelEvent(model_key=key, version="v2", sha256=v2.sha256, event="promoted")
        )

        async def reloaded() -> bool:
            return consumer.models.served_versions().get(key) == "v2"

        assert await eventually(reloaded)
        await produce_alerts(settings.bootstrap, settings.topics.alerts, second)

        # v3 is tampered with after publication: the reload is refused, v2 keeps serving
        v3 = store.publish(
            fit_bundle(
                bars.iloc[300:1300],
                symbol="SPX",
                target="direction",
                model_type="logreg",
                version="v3",
            )
        )
        store.promote(key, "v3")
        with (v3.path / "model.joblib").open("ab") as handle:
            handle.write(b"tampered")
        await events.publish(
            ModelEvent(model_key=key, version="v3", sha256=v3.sha256, event="promoted")
        )

        async def refused() -> bool:
            return any(k == key for k, _ in consumer.reloader.refused)

        assert await eventually(refused)
        await produce_alerts(settings.bootstrap, settings.topics.alerts, third)

        async def all_stored() -> bool:
            return len(await signal_rows(session_factory)) >= len(stream) * len(keys)

        assert await eventually(all_stored)
        assert consumer.models.served_versions()[key] == "v2"

    rows = await signal_rows(session_factory)
    per_alert = defaultdict(list)
    for row in rows:
        per_alert[row.alert_id].append(row.model_key)
    assert {a.alert_id: sorted(per_alert[a.alert_id]) for a in stream} == {
        a.alert_id: sorted(keys) for a in stream
    }
    versions = [
        r.model_version for r in sorted(rows, key=lambda r: r.bar_time) if r.model_key == key
    ]
    assert versions == sorted(versions)  # v1 ... v1, v2 ... v2: one switch, never back
    by_alert = {r.alert_id: r.model_version for r in rows if r.model_key == key}
    assert {by_alert[a.alert_id] for a in second + third} == {"v2"}
    assert by_alert[first[0].alert_id] == "v1"
    refusal = next(reason for k, reason in consumer.reloader.refused if k == key)
    assert "v3" in refusal
    other = {r.model_version for r in rows if r.model_key == keys[1]}
    assert other == {"v1"}
