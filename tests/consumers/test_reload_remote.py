"""A consumer on another machine follows promotions through its remote (an HTTP mirror here).

The same local mirror server as the artifact tests (`tests/artifacts/test_http.py`);
the reloader is the one the consumer app subscribes (`remote_pull(settings)`), without Kafka.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from bot.artifacts import ArtifactRegistry, registry_from_settings
from bot.contracts import ModelEvent, ModelEventKind, Settings
from bot.serving import pull_champions
from consumers.reload import Reloader, remote_pull
from consumers.served_models import PredictorModels
from tests.artifacts.test_http import (
    FAST,
    KEY,
    TOKEN,
    Mirror,
    ServerFactory,
)
from tests.support.bundles import make_bundle
from tests.support.keys import SIGNING_KEY

VERSIONS = [f"2026010{day}T000000Z-0001" for day in range(1, 6)]


def refused_total() -> float:
    return (
        REGISTRY.get_sample_value("itff_consumer_model_reloads_total", {"result": "refused"}) or 0.0
    )


def event(
    version: str, registry: ArtifactRegistry, kind: ModelEventKind = "promoted"
) -> ModelEvent:
    sha256 = next(info.sha256 for info in registry.versions(KEY) if info.version == version)
    return ModelEvent(model_key=KEY, version=version, sha256=sha256, event=kind)


@pytest.fixture
def scheduler(settings: Settings, tmp_path: Path) -> ArtifactRegistry:
    """The scheduler's registry (its disk), behind the mirror."""
    registry = ArtifactRegistry(tmp_path / "scheduler", signing_key=SIGNING_KEY)
    for seed, version in enumerate(VERSIONS):
        registry.publish(make_bundle(version=version, seed=seed))
    registry.promote(KEY, VERSIONS[0])
    return registry


async def test_promotions_are_pulled_verified_and_refused_when_the_pull_fails(
    settings: Settings,
    tmp_path: Path,
    scheduler: ArtifactRegistry,
    aiohttp_server: ServerFactory,
) -> None:
    mirror = Mirror(scheduler.root)
    server = await aiohttp_server(mirror.app())
    consumer = settings.model_copy(
        update={
            "artifact_dir": tmp_path / "consumer",
            "artifact_base_url": f"http://{server.host}:{server.port}/artifacts/?{TOKEN}",
            "artifact_signing_key": SecretStr(SIGNING_KEY),
        }
    )
    await pull_champions(consumer, options=FAST)  # the start-up step of `consumers.runner.run`
    models = PredictorModels.from_settings(consumer)
    reloader = Reloader(
        models, pull=remote_pull(consumer, FAST), pull_wait_seconds=5, pull_retry_seconds=0.05
    )
    await reloader.sync()
    assert models.served_versions() == {KEY: VERSIONS[0]}

    # promoted: installed from the mirror, verified, served (no restart)
    scheduler.promote(KEY, VERSIONS[1])
    assert await reloader.handle(event(VERSIONS[1], scheduler)) == VERSIONS[1]
    assert registry_from_settings(consumer).champion(KEY) == VERSIONS[1]

    # the event arrives before the scheduler's push: the pull waits for the mirror
    async def push_later() -> None:
        await asyncio.sleep(0.3)
        scheduler.promote(KEY, VERSIONS[2])

    pushed = asyncio.create_task(push_later())
    assert await reloader.handle(event(VERSIONS[2], scheduler)) == VERSIONS[2]
    await pushed

    # rolled back: the older version comes back from the mirror
    scheduler.promote(KEY, VERSIONS[1])
    assert await reloader.handle(event(VERSIONS[1], scheduler, "rolled_back")) == VERSIONS[1]
    assert models.served_versions() == {KEY: VERSIONS[1]}

    # a corrupted download: refused, nothing installed, the old version keeps serving
    before = refused_total()
    scheduler.promote(KEY, VERSIONS[3])
    mirror.corrupt.add("model.joblib")
    assert await reloader.handle(event(VERSIONS[3], scheduler)) is None
    assert models.served_versions() == {KEY: VERSIONS[1]}
    assert VERSIONS[3] not in [
        info.version for info in registry_from_settings(consumer).versions(KEY)
    ]
    assert refused_total() == before + 1
    key, reason = reloader.refused[-1]
    assert key == KEY
    assert "IntegrityError" in reason
    mirror.corrupt.clear()

    # the mirror never shows the event's version (not pushed): refused after the wait
    scheduler.promote(KEY, VERSIONS[1])
    short = Reloader(models, pull=remote_pull(consumer, FAST), pull_wait_seconds=0.2)
    assert await short.handle(event(VERSIONS[4], scheduler)) is None
    assert models.served_versions() == {KEY: VERSIONS[1]}
    assert refused_total() == before + 2
    assert f"still {VERSIONS[1]}, not the event's {VERSIONS[4]}" in short.refused[-1][1]


async def test_without_a_remote_the_event_reloads_the_local_champion(settings: Settings) -> None:
    registry = registry_from_settings(settings)
    for version in VERSIONS[:2]:
        registry.publish(make_bundle(version=version))
    registry.promote(KEY, VERSIONS[0])
    models = PredictorModels.from_settings(settings)
    reloader = Reloader(models, pull=remote_pull(settings, FAST))
    await reloader.sync()

    registry.promote(KEY, VERSIONS[1])

    assert await reloader.handle(event(VERSIONS[1], registry)) == VERSIONS[1]
    assert models.served_versions() == {KEY: VERSIONS[1]}
