"""The scheduler's verification job catches a flipped byte in a published artifact."""

from __future__ import annotations

import asyncio

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED
from prometheus_client import REGISTRY

from bot.artifacts import ArtifactRegistry
from bot.contracts import IntegrityError
from bot.pipeline import VERIFY, ItffScheduler
from storage import model_versions as model_repo
from tests.support.pipeline import small_bundle
from tests.support.postgres import both_stores

pytestmark = both_stores

KEY = "SPX-direction-logreg"


class NoEvents:
    """Verification publishes nothing; a publish here would be a bug."""

    async def start(self) -> None:
        """Nothing to connect to."""

    async def publish(self, event: object) -> None:
        raise AssertionError(f"verification must not publish {event!r}")


def _failures() -> float:
    return REGISTRY.get_sample_value("itff_artifact_verification_failures_total") or 0.0


async def _record(session_factory, registry: ArtifactRegistry, version: str) -> None:
    published = registry.publish(small_bundle(version))
    async with session_factory() as session:
        await model_repo.add_version(
            session=session, key=KEY, version=version, symbol="SPX", target="direction",
            model_type="logreg", sha256=published.sha256, metrics={}, train_start=None,
            train_end=None, run_id=None,
        )  # fmt: skip
        await session.commit()


async def test_flipped_byte_is_caught_marked_counted_and_never_loaded(
    settings, session_factory
) -> None:
    registry = ArtifactRegistry(settings.artifact_dir)
    await _record(session_factory, registry, "v1")
    await _record(session_factory, registry, "v2")
    registry.promote(KEY, "v2")
    model_file = settings.artifact_dir / KEY / "v1" / "model.joblib"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    model_file.write_bytes(bytes(data))
    before = _failures()

    fast = settings.model_copy(update={"verify_interval_minutes": 0.01})  # every 0.6 s
    scheduler = ItffScheduler(
        fast, session_factory=session_factory, registry=registry, events=NoEvents(),
        name=f"verify-{settings.topic_prefix}",
    )  # fmt: skip
    done = asyncio.Event()

    def on_executed(event) -> None:
        if event.job_id == VERIFY:
            done.set()

    scheduler.add_listener(on_executed, EVENT_JOB_EXECUTED)
    await scheduler.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=60)
    finally:
        await scheduler.shutdown()

    assert _failures() >= before + 1
    async with session_factory() as session:
        tampered = await model_repo.get_version(session=session, key=KEY, version="v1")
        intact = await model_repo.get_version(session=session, key=KEY, version="v2")
    assert tampered is not None
    assert intact is not None
    assert tampered.verification_ok is False
    assert tampered.last_verified_at is not None
    assert intact.verification_ok is True
    with pytest.raises(IntegrityError):
        registry.load(KEY, "v1")
    assert registry.load(KEY).version == "v2"
