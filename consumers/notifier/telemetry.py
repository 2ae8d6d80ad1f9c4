"""Prometheus metrics of the notifier, per destination."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DELIVERIES = Counter(
    "itff_notifier_deliveries_total",
    "Signals handled per destination, by result: delivered, parked (kept failing or refused), "
    "duplicate (already delivered or parked: a redelivery), filtered (not for this destination)",
    ["destination", "result"],
)
ATTEMPTS = Counter(
    "itff_notifier_attempts_total",
    "HTTP attempts per destination, by outcome: ok, http_429, http_5xx, http_4xx, timeout, error",
    ["destination", "outcome"],
)
LATENCY = Histogram(
    "itff_notifier_delivery_seconds",
    "From Signal.emitted_at to the destination's acknowledgement",
    ["destination"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
