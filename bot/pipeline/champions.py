"""The one champion switch: promote or roll back a version, record it, mirror it, tell the
consumers.

Every change of champion, from the daily pipeline, `itff train` or `itff rollback`, goes through
`ChampionSwitch`, in this order:

1. the registry's `CHAMPION` pointer (`ArtifactRegistry.promote` / `rollback`, verified first);
2. the `model_versions` / `model_events` rows;
3. the mirror: the push to object storage when `ITFF_S3_BUCKET` is set, so that a consumer on
   another machine finds the new version in the bucket when the event reaches it;
4. the `ModelEvent` (key = model_key) on `settings.topics.models`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.artifacts import ArtifactRegistry
from bot.artifacts.s3 import PushReport, bucket_from_settings
from bot.contracts import IntegrityError, ModelEvent, Settings
from bot.pipeline import telemetry
from bot.runtime import get_logger
from storage import model_versions as model_repo

log = get_logger(__name__)
SessionFactory = async_sessionmaker[AsyncSession]
SwitchEvent = Literal["promoted", "rolled_back"]
Mirror = Callable[[str, SwitchEvent], Awaitable[object]]


class EventSink(Protocol):
    async def start(self) -> None:
        """Be ready to publish (connect); a run calls it first so that it fails before changing
        anything when the broker is unreachable."""

    async def publish(self, event: ModelEvent) -> None: ...


@dataclass(frozen=True, slots=True)
class ChampionSwitch:
    """Promote and roll back champions (see the module docstring for the order of the steps).

    `mirror` runs after the switch and before the event; by default it pushes the key to object
    storage when `ITFF_S3_BUCKET` is set (`bucket_mirror`), and never raises.
    """

    session_factory: SessionFactory
    registry: ArtifactRegistry
    events: EventSink
    mirror: Mirror | None = None

    async def promote(
        self, *, key: str, version: str, sha256: str, previous: str | None, reason: str,
        metrics: dict[str, float | None],
    ) -> None:  # fmt: skip
        """Make a published (verified) version the champion of `key` and emit `promoted`."""
        await self.events.start()  # no broker: refuse before anything changes
        await asyncio.to_thread(self.registry.promote, key, version)
        await self._record(key, version, previous, "promoted", reason)
        await self._announce(key, version, sha256, "promoted", metrics)
        log.info("champion_promoted", model_key=key, version=version, previous=previous)

    async def rollback(self, *, key: str, to: str | None = None) -> str:
        """Switch the champion of `key` back (to `to` or the previous one); the new champion."""
        await self.events.start()  # no broker: refuse before anything changes
        previous = await asyncio.to_thread(self.registry.champion, key)
        version = await asyncio.to_thread(self.registry.rollback, key, to)
        info = await asyncio.to_thread(self.registry.info, key, version)
        if info.sha256 is None:
            raise IntegrityError(
                f"{key}/{version} has no readable manifest; run `itff artifacts verify`"
            )
        reason = f"rollback from {previous} to {version}"
        stored = await self._record(key, version, previous, "rolled_back", reason)
        metrics = {name: _metric(value) for name, value in stored.items() if _is_metric(value)}
        await self._announce(key, version, info.sha256, "rolled_back", metrics)
        log.info("champion_rolled_back", model_key=key, version=version, previous=previous)
        return version

    async def _record(
        self, key: str, version: str, previous: str | None, event: SwitchEvent, reason: str
    ) -> dict[str, object]:
        """The database half of a switch; the stored metrics of the new champion."""
        async with self.session_factory() as session:
            await model_repo.set_champion(session=session, key=key, version=version)
            await model_repo.add_event(
                session=session, key=key, version=version, previous_version=previous,
                event=event, reason=reason,
            )  # fmt: skip
            row = await model_repo.get_version(session=session, key=key, version=version)
            await session.commit()
        return dict(row.metrics) if row is not None else {}

    async def _announce(
        self, key: str, version: str, sha256: str, event: SwitchEvent,
        metrics: dict[str, float | None],
    ) -> None:  # fmt: skip
        if self.mirror is not None:
            await self.mirror(key, event)
        await self.events.publish(
            ModelEvent(model_key=key, version=version, sha256=sha256, event=event, metrics=metrics)
        )


def bucket_mirror(settings: Settings, registry: ArtifactRegistry) -> Mirror | None:
    """The default mirror: push a switched key to `ITFF_S3_BUCKET`; None when no bucket is set."""
    if not settings.s3_bucket:
        return None

    async def push(key: str, event: SwitchEvent) -> PushReport | None:
        return await asyncio.to_thread(push_key_logged, settings, registry, key, event=event)

    return push


def push_key_logged(
    settings: Settings, registry: ArtifactRegistry, key: str, *, event: str
) -> PushReport | None:
    """After a promotion or rollback (`event`) of `key`, push it to the bucket.

    Never raises: the switch has happened and stands; a failed push is logged and counted
    (`itff_artifact_pushes_total{result="failed"}`), and `itff artifacts push` repeats it.
    Blocking (boto3).
    """
    try:
        report = bucket_from_settings(settings).push(registry, [key])
    except Exception as exc:  # any failure of the copy must leave the switch alone
        telemetry.ARTIFACT_PUSHES.labels("failed").inc()
        log.error(
            "artifact_push_failed",
            model_key=key,
            switch=event,
            error=f"{type(exc).__name__}: {exc}",
            action="the bucket still serves the former champion: run `itff artifacts push`",
        )
        return None
    telemetry.ARTIFACT_PUSHES.labels("ok").inc()
    log.info(
        "artifact_pushed",
        model_key=key,
        switch=event,
        champion=report.champions.get(key),
        uploaded=len(report.uploaded),
    )
    return report


def _metric(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _is_metric(value: object) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))
