"""Prometheus metrics of the receiver, in a registry of its own (one per app)."""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)

M = TypeVar("M", Counter, Histogram)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ReceiverMetrics:
    """Request latency, alert counts by outcome, Kafka publish latency, the outbox depth and parked
    entries."""

    def __init__(self) -> None:
        self._children: dict[tuple[Any, ...], Any] = {}
        self.registry = reg = CollectorRegistry()
        process_collector.ProcessCollector(registry=reg)
        platform_collector.PlatformCollector(registry=reg)
        gc_collector.GCCollector(registry=reg)
        self.request_latency = Histogram(
            "itff_api_request_latency_seconds",
            "HTTP request latency of the receiver, by route and status",
            ("route", "status"),
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.alerts_received = Counter(
            "itff_alerts_received", "Alerts received, by source", ("source",), registry=reg
        )
        self.alerts_accepted = Counter(
            "itff_alerts_accepted",
            "Alerts accepted, by delivery: published to Kafka or queued in the outbox",
            ("source", "delivery"),
            registry=reg,
        )
        self.alerts_duplicate = Counter(
            "itff_alerts_duplicate",
            "Repeated alert ids, not published again",
            ("source",),
            registry=reg,
        )
        self.alerts_rejected = Counter(
            "itff_alerts_rejected", "Alerts refused, by reason", ("reason",), registry=reg
        )
        self.publish_latency = Histogram(
            "itff_kafka_publish_latency_seconds",
            "Time until Kafka acknowledged an alert (acks=all)",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.outbox_depth = Gauge(
            "itff_outbox_depth", "Alerts queued in the durable outbox", registry=reg
        )
        self.outbox_parked = Gauge(
            "itff_outbox_parked",
            "Alerts parked in the outbox: Kafka refused them ITFF_OUTBOX_MAX_ATTEMPTS times",
            registry=reg,
        )
        self.audit_dropped = Counter(
            "itff_audit_lines_dropped",
            "Audit log lines lost: the writer was behind by its whole buffer, or the file failed",
            registry=reg,
        )
        self.kafka_connected = Gauge(
            "itff_kafka_connected", "1 while the Kafka producer is connected", registry=reg
        )

    def child(self, metric: M, *labels: str) -> M:
        """`metric.labels(*labels)`, looked up once per label set (this is on every request)."""
        key = (metric, *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def render(self) -> bytes:
        return generate_latest(self.registry)
