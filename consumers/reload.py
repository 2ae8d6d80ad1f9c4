"""Hot reload on `ModelEvent`s: verify and swap in the new champion, or refuse and keep serving.

The predictor loads and verifies the new version (SHA-256 and HMAC before unpickling) in a worker
thread and swaps it in atomically: alerts keep being served by the old model until the swap, by the
new one after, with no gap. A tampered or unverifiable artifact is refused: the old model keeps
serving, `itff_consumer_model_reloads_total{result="refused"}` counts it and an error line says why.
"""

from __future__ import annotations

import asyncio
import contextlib

from bot.errors import ItffError
from bot.observability import get_logger
from bot.schemas import ModelEvent
from consumers import metrics
from consumers.models import ServedModels

log = get_logger(__name__)


class Reloader:
    def __init__(self, models: ServedModels) -> None:
        self._models = models
        self._lock = asyncio.Lock()
        self.refused: list[tuple[str, str]] = []  # (model_key, reason), newest last

    async def handle(self, event: ModelEvent) -> str | None:
        """Reload `event.model_key`; the version now served, or None when refused."""
        async with self._lock:
            return await self._reload(event.model_key, event.version, event.event)

    async def sync(self) -> None:
        """Reload every key whose champion differs from what is served (events missed at start)."""
        async with self._lock:
            served = self._models.served_versions()
            for key, version in self._models.champion_versions().items():
                if served.get(key) != version:
                    await self._reload(key, version, "sync")
            for key, version in self._models.served_versions().items():
                publish_version(key, version)

    async def _reload(self, key: str, version: str, why: str) -> str | None:
        previous = self._models.served_versions().get(key)
        try:
            served = await asyncio.to_thread(self._models.reload, key)
        except ItffError as exc:
            metrics.MODEL_RELOADS.labels(result="refused").inc()
            self.refused.append((key, str(exc)))
            log.error(
                "model reload refused; the previous version keeps serving",
                model_key=key,
                version=version,
                serving=previous,
                trigger=why,
                error=f"{type(exc).__name__}: {exc}",
            )
            return None
        metrics.MODEL_RELOADS.labels(result="ok").inc()
        if previous and previous != served:
            with contextlib.suppress(KeyError):  # a version loaded lazily was never labelled
                metrics.MODEL_VERSION.remove(key, previous)
        publish_version(key, served)
        log.info("model reloaded", model_key=key, version=served, previous=previous, trigger=why)
        if served != version:
            log.warning(
                "the registry's champion is not the event's version",
                model_key=key,
                event_version=version,
                champion=served,
            )
        return served


def publish_version(key: str, version: str) -> None:
    metrics.MODEL_VERSION.labels(model_key=key, version=version).set(1)
