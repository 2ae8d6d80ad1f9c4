"""`ChampionSwitch.rollback` switches the champion and its ModelEvent reaches the real models
topic."""

from __future__ import annotations

import pytest

from bot.artifacts import ArtifactRegistry
from bot.contracts import ModelEvent, NotFound
from bot.kafka import ModelEventPublisher
from bot.pipeline import ChampionSwitch
from storage import model_versions as model_repo
from tests.support.kafka import topic_reader
from tests.support.pipeline import small_bundle
from tests.support.postgres import both_stores

pytestmark = [pytest.mark.kafka, both_stores]
KEY = "SPX-direction-logreg"


async def _publish(session_factory, registry: ArtifactRegistry, version: str) -> str:
    published = registry.publish(small_bundle(version, accuracy=0.5 + int(version[1:]) / 100))
    async with session_factory() as session:
        await model_repo.add_version(
            session=session, key=KEY, version=version, symbol="SPX", target="direction",
            model_type="logreg", sha256=published.sha256, metrics={"accuracy": 0.51},
            train_start=None, train_end=None, run_id=None,
        )  # fmt: skip
        await model_repo.set_champion(session=session, key=KEY, version=version)
        await session.commit()
    registry.promote(KEY, version)
    return published.sha256


async def _read_events(settings, count: int) -> list[tuple[bytes, ModelEvent]]:
    consumer = topic_reader(settings.bootstrap, settings.topics.models)
    await consumer.start()
    try:
        batches = []
        while len(batches) < count:
            records = await consumer.getmany(timeout_ms=10_000, max_records=count)
            if not records:
                break
            batches.extend(r for part in records.values() for r in part)
        return [(r.key, ModelEvent.model_validate_json(r.value)) for r in batches]
    finally:
        await consumer.stop()


async def test_rollback_switches_champion_records_and_emits_event(
    kafka_settings, session_factory
) -> None:
    registry = ArtifactRegistry(kafka_settings.artifact_dir)
    sha_v1 = await _publish(session_factory, registry, "v1")
    await _publish(session_factory, registry, "v2")

    async with ModelEventPublisher(kafka_settings) as events:
        switch = ChampionSwitch(session_factory, registry, events)
        version = await switch.rollback(key=KEY)
        with pytest.raises(NotFound):  # nothing before v1 to go back to
            await switch.rollback(key=KEY)

    assert version == "v1"
    assert registry.champion(KEY) == "v1"
    async with session_factory() as session:
        champion = await model_repo.champion_row(session=session, key=KEY)
        history = await model_repo.list_events(session=session, key=KEY)
    assert champion is not None
    assert champion.version == "v1"
    assert (history[0].event, history[0].version, history[0].previous_version) == (
        "rolled_back", "v1", "v2",
    )  # fmt: skip

    received = await _read_events(kafka_settings, 1)
    assert len(received) == 1
    key, event = received[0]
    assert key == KEY.encode()
    assert (event.event, event.model_key, event.version, event.sha256) == (
        "rolled_back", KEY, "v1", sha_v1,
    )  # fmt: skip


async def test_the_mirror_runs_after_the_switch_and_before_the_event(
    kafka_settings, session_factory
) -> None:
    """The push to object storage goes between the switch and the event: a remote consumer
    that reads the event finds the new champion already in the bucket."""
    registry = ArtifactRegistry(kafka_settings.artifact_dir)
    await _publish(session_factory, registry, "v1")
    await _publish(session_factory, registry, "v2")
    seen: list[tuple[str | None, int]] = []

    async def mirror(key: str, event: str) -> None:
        assert (key, event) == (KEY, "rolled_back")
        seen.append((registry.champion(KEY), len(await _read_events(kafka_settings, 1))))

    async with ModelEventPublisher(kafka_settings) as events:
        await ChampionSwitch(session_factory, registry, events, mirror).rollback(key=KEY)
    assert seen == [("v1", 0)]  # switched, and not yet announced
    assert [event.version for _key, event in await _read_events(kafka_settings, 1)] == ["v1"]
