"""Fixtures of the pipeline tests: an event sink without a broker, and schedulers that use it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.artifacts import ArtifactRegistry
from bot.pipeline import ItffScheduler


class Collect:
    """A real event sink for runs without a broker: keeps what the pipeline publishes."""

    def __init__(self) -> None:
        self.events: list[object] = []

    async def start(self) -> None:
        """Nothing to connect to."""

    async def publish(self, event: object) -> None:
        self.events.append(event)


MakeScheduler = Callable[..., ItffScheduler]


@pytest.fixture
def make_scheduler_on() -> MakeScheduler:
    """`make(settings, session_factory, events=None)`: the real scheduler of the test's settings,
    publishing into a `Collect` unless given another sink."""

    def make(settings, session_factory, events=None) -> ItffScheduler:
        return ItffScheduler(
            settings, session_factory=session_factory,
            registry=ArtifactRegistry(settings.artifact_dir), events=events or Collect(),
            name=f"sched-{settings.topic_prefix}",
        )  # fmt: skip

    return make
