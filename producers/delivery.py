"""Accepting an alert: Kafka within the time budget, otherwise the durable outbox.

While the outbox holds queued entries, new alerts join its tail, so per-symbol order is kept and a
down broker costs one budget, not one per request. Parked entries (Kafka refused them, see
`producers.outbox`) hold nothing back.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from bot.contracts import Alert, TransientError
from bot.runtime import get_logger
from producers.dedupe import DuplicateWindow
from producers.outbox import Outbox
from producers.publisher import Publisher
from producers.telemetry import ReceiverMetrics

log = get_logger(__name__)

Outcome = Literal["published", "queued", "duplicate"]


class AlertDelivery:
    def __init__(
        self,
        *,
        publisher: Publisher,
        outbox: Outbox,
        topic: str,
        budget_seconds: float,
        dedupe: DuplicateWindow,
        metrics: ReceiverMetrics,
    ) -> None:
        self.publisher = publisher
        self.outbox = outbox
        self.topic = topic
        self.budget = budget_seconds
        self.dedupe = dedupe
        self.metrics = metrics

    async def accept(self, alert: Alert) -> Outcome:
        """Publish or queue once per alert id; `TransientError` when neither Kafka nor the outbox
        holds the alert (the client must retry)."""
        async with self.dedupe.claim(alert.alert_id) as new:
            if not new or await self.outbox.contains(alert.alert_id):
                return "duplicate"
            if self.dedupe.seen(alert.alert_id):  # drained (and remembered) while we looked
                return "duplicate"
            outcome = await self._deliver(alert)
            self.dedupe.remember(alert.alert_id)
            return outcome

    async def _deliver(self, alert: Alert) -> Outcome:
        key, value = alert.symbol.encode(), alert.model_dump_json().encode()
        delivery = await self._publish(alert.alert_id, key, value)
        if delivery is None:
            return "published"
        in_flight = None if delivery is True else delivery
        try:
            added = await self.outbox.enqueue(
                alert_id=alert.alert_id,
                topic=self.topic,
                key=key,
                payload=value,
                in_flight=in_flight,
            )
        except TransientError:
            log.error("alert neither published nor queued", alert_id=alert.alert_id)
            raise
        return "queued" if added else "duplicate"

    async def _publish(
        self, alert_id: str, key: bytes, value: bytes
    ) -> asyncio.Future[object] | Literal[True] | None:
        """None once Kafka acknowledged; else the delivery still in flight, or True if none is.

        One budget covers handing the record over and its acknowledgement; waiting is
        `asyncio.wait`, which never cancels the delivery itself.
        """
        if self.outbox.depth or not self.publisher.connected:
            return True
        started = time.perf_counter()
        delivery = None
        try:
            async with asyncio.timeout(self.budget):
                delivery = await self.publisher.send(self.topic, key, value)
                await asyncio.wait((delivery,))
        except TransientError:
            return True
        except TimeoutError:
            if delivery is None:
                log.warning("kafka did not take the alert in time, queueing", alert_id=alert_id)
                return True
        if not delivery.done():
            log.warning("kafka did not confirm in time, queueing", alert_id=alert_id)
            return delivery
        if delivery.exception() is None:
            self.metrics.publish_latency.observe(time.perf_counter() - started)
            return None
        log.warning("kafka refused, queueing", alert_id=alert_id, error=repr(delivery.exception()))
        return True
