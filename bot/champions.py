"""Champion switches: promote or roll back a version, record it, and tell the consumers.

Both publish a `ModelEvent` (key = model_key) on `settings.topics.models` after the registry's
`CHAMPION` pointer and the `model_versions` / `model_events` rows are updated, so a consumer that
reloads on the event finds the new champion in place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.artifacts import ArtifactRegistry
from bot.errors import IntegrityError
from bot.observability import get_logger
from bot.schemas import ModelEvent
from storage import models as model_repo

log = get_logger(__name__)
SessionFactory = async_sessionmaker[AsyncSession]


class EventSink(Protocol):
    async def start(self) -> None:
        """Be ready to publish (connect); a run calls it first so that it fails before changing
        anything when the broker is unreachable."""

    async def publish(self, event: ModelEvent) -> None: ...


BeforeEvent = Callable[[], Awaitable[object]]


async def promote_version(
    *,
    session_factory: SessionFactory,
    registry: ArtifactRegistry,
    events: EventSink,
    key: str,
    version: str,
    sha256: str,
    previous: str | None,
    reason: str,
    metrics: dict[str, float | None],
    before_event: BeforeEvent | None = None,
) -> None:
    """Make a published (verified) version the champion of `key` and emit `promoted`.

    `before_event` runs after the switch and before the event (the push to object storage, so
    that a consumer on another machine finds the new version when the event reaches it).
    """
    await asyncio.to_thread(registry.promote, key, version)
    async with session_factory() as session:
        await model_repo.set_champion(session=session, key=key, version=version)
        await model_repo.add_event(
            session=session, key=key, version=version, previous_version=previous,
            event="promoted", reason=reason,
        )  # fmt: skip
        await session.commit()
    if before_event is not None:
        await before_event()
    await events.publish(
        ModelEvent(model_key=key, version=version, sha256=sha256, event="promoted", metrics=metrics)
    )
    log.info("champion_promoted", model_key=key, version=version, previous=previous)


async def rollback_champion(
    *,
    session_factory: SessionFactory,
    registry: ArtifactRegistry,
    events: EventSink,
    key: str,
    to: str | None = None,
    before_event: BeforeEvent | None = None,
) -> str:
    """Switch the champion of `key` back (to `to` or the previous one) and tell the consumers
    (`before_event` as for `promote_version`)."""
    previous = await asyncio.to_thread(registry.champion, key)
    version = await asyncio.to_thread(registry.rollback, key, to)
    info = await asyncio.to_thread(registry.info, key, version)
    if info.sha256 is None:
        raise IntegrityError(
            f"{key}/{version} has no readable manifest; run `itff artifacts verify`"
        )
    reason = f"rollback from {previous} to {version}"
    async with session_factory() as session:
        await model_repo.set_champion(session=session, key=key, version=version)
        await model_repo.add_event(
            session=session, key=key, version=version, previous_version=previous,
            event="rolled_back", reason=reason,
        )  # fmt: skip
        row = await model_repo.get_version(session=session, key=key, version=version)
        await session.commit()
    metrics = dict(row.metrics) if row is not None else {}
    if before_event is not None:
        await before_event()
    await events.publish(
        ModelEvent(
            model_key=key,
            version=version,
            sha256=info.sha256,
            event="rolled_back",
            metrics={name: value for name, value in metrics.items() if _is_metric(value)},
        )
    )
    log.info("champion_rolled_back", model_key=key, version=version, previous=previous)
    return version


def _is_metric(value: object) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))
