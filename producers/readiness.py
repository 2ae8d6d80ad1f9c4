"""Kafka's reachability as last probed: `GET /ready` answers from it.

A background task (owned by the app's cleanup context) asks the broker for metadata once every
`interval` seconds, whatever the request rate, so that `/ready` costs no broker request and a
flood of probes cannot turn into a flood of metadata requests.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

READY_INTERVAL_S = 5.0
READY_PING_TIMEOUT_S = 1.0


class Pingable(Protocol):
    async def ping(self, within: float) -> bool: ...


class Readiness:
    def __init__(
        self,
        publisher: Pingable,
        *,
        interval: float = READY_INTERVAL_S,
        timeout: float = READY_PING_TIMEOUT_S,
    ) -> None:
        self._publisher = publisher
        self.interval = interval
        self._timeout = timeout
        self.kafka = False
        self.probes = 0  # broker requests made so far
        self._checked = time.monotonic()

    def record(self, kafka: bool) -> None:
        self.kafka = kafka
        self._checked = time.monotonic()

    @property
    def age_seconds(self) -> float:
        return time.monotonic() - self._checked

    async def probe(self) -> bool:
        self.probes += 1
        self.record(await self._publisher.ping(self._timeout))
        return self.kafka

    async def run(self) -> None:
        """Probe every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            await self.probe()
