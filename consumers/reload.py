"""Hot reload on `ModelEvent`s: verify and swap in the new champion, or refuse and keep serving.

The predictor loads and verifies the new version (SHA-256 and Ed25519 signature before unpickling)
in a worker thread and swaps it in atomically: alerts keep being served by the old model until the
swap, by the new one after, with no gap. A tampered or unverifiable artifact is refused: the old
model keeps serving, `itff_consumer_model_reloads_total{result="refused"}` counts it and an error
line says why.

A consumer that does not share the scheduler's disk (a remote is configured:
`ITFF_ARTIFACT_BASE_URL` or `ITFF_S3_BUCKET`, see `bot.serving.install`) first installs the key's
remote champion, verified, then reloads it. The scheduler pushes to the remote before it publishes
the event; should the remote still lag (a failed push, a mirror's cache), the pull is retried until
the remote's champion is the event's version (for `pull_wait_seconds`); a pull that fails or
never shows that version refuses the reload, exactly as a tampered artifact does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from bot.artifacts import FetchResult, RemoteOptions
from bot.contracts import ItffError, ModelEvent, TransientError
from bot.runtime import get_logger
from bot.serving import pull_key
from consumers import telemetry
from consumers.served_models import ServedModels

if TYPE_CHECKING:
    from bot.contracts import Settings

log = get_logger(__name__)

# installs one key's remote champion; None without a remote (`bot.serving.install.pull_key`)
Pull = Callable[[str], Awaitable[FetchResult | None]]


def remote_pull(settings: Settings, options: RemoteOptions | None = None) -> Pull:
    """The pull of the settings' remote (a no-op returning None when none is configured)."""

    async def pull(key: str) -> FetchResult | None:
        return await pull_key(settings, key, options=options)

    return pull


class Reloader:
    def __init__(
        self,
        models: ServedModels,
        *,
        pull: Pull | None = None,
        pull_wait_seconds: float = 120.0,
        pull_retry_seconds: float = 1.0,
    ) -> None:
        self._models = models
        self._pull = pull
        self._pull_wait = pull_wait_seconds
        self._pull_retry = pull_retry_seconds
        self._lock = asyncio.Lock()
        self.refused: list[tuple[str, str]] = []  # (model_key, reason), newest last

    async def handle(self, event: ModelEvent) -> str | None:
        """Pull (when a remote is configured) and reload `event.model_key`; the version now
        served, or None when refused."""
        async with self._lock:
            key, version, why = event.model_key, event.version, event.event
            try:
                await self._pull_version(key, version)
            except ItffError as exc:
                self._refuse(key, version, why, exc)
                return None
            return await self._reload(key, version, why)

    async def sync(self) -> None:
        """Reload every key whose champion differs from what is served (events missed at start)."""
        async with self._lock:
            served = self._models.served_versions()
            for key, version in self._models.champion_versions().items():
                if served.get(key) != version:
                    await self._reload(key, version, "sync")
            for key, version in self._models.served_versions().items():
                publish_version(key, version)

    async def _pull_version(self, key: str, version: str) -> None:
        """Install the remote's champion of `key` until it is `version` (the scheduler pushes
        after the event); raises when the pull fails or the remote never shows `version`."""
        if self._pull is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._pull_wait
        delay = self._pull_retry
        while True:
            result = await self._pull(key)
            if result is None or result.version == version:
                if result is not None:
                    log.info(
                        "champion pulled from the remote",
                        model_key=key,
                        version=result.version,
                        installed=result.installed,
                    )
                return
            if loop.time() + delay > deadline:
                raise TransientError(
                    f"the remote's champion of {key} is still {result.version}, not the event's "
                    f"{version}, after {self._pull_wait:.0f} s: was it pushed "
                    "(`itff artifacts push`)?"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _refuse(self, key: str, version: str, why: str, exc: ItffError) -> None:
        telemetry.MODEL_RELOADS.labels(result="refused").inc()
        self.refused.append((key, f"{type(exc).__name__}: {exc}"))
        log.error(
            "model reload refused; the previous version keeps serving",
            model_key=key,
            version=version,
            serving=self._models.served_versions().get(key),
            trigger=why,
            error=f"{type(exc).__name__}: {exc}",
        )

    async def _reload(self, key: str, version: str, why: str) -> str | None:
        previous = self._models.served_versions().get(key)
        try:
            served = await asyncio.to_thread(self._models.reload, key)
        except ItffError as exc:
            self._refuse(key, version, why, exc)
            return None
        telemetry.MODEL_RELOADS.labels(result="ok").inc()
        if previous and previous != served:
            with contextlib.suppress(KeyError):  # a version loaded lazily was never labelled
                telemetry.MODEL_VERSION.remove(key, previous)
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
    telemetry.MODEL_VERSION.labels(model_key=key, version=version).set(1)
