"""Prometheus metrics of the consumers (FastStream's own come from its middleware)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

INFERENCE_LATENCY = Histogram(
    "itff_consumer_inference_seconds",
    "Features and predictions of one batch (all its symbols), in a worker thread",
    buckets=LATENCY_BUCKETS,
)
BATCH_STAGE = Histogram(
    "itff_consumer_batch_stage_seconds",
    "Where a consumed batch's time goes: read (windows and history from the database), infer "
    "(features and every model, all symbols), write (one transaction), publish (signals and dead "
    "letters until Kafka acknowledged them), commit (the batch's offsets)",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
STAGE_READ, STAGE_INFER, STAGE_WRITE, STAGE_PUBLISH, STAGE_COMMIT = (
    BATCH_STAGE.labels(stage=stage) for stage in ("read", "infer", "write", "publish", "commit")
)
END_TO_END_LATENCY = Histogram(
    "itff_consumer_end_to_end_seconds",
    "From Alert.received_at (webhook receipt) to the signal acknowledged by Kafka",
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "itff_consumer_batch_records",
    "Alert records per consumed batch",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
SIGNALS = Counter(
    "itff_consumer_signals_total", "Signals published, by action", ["action", "redelivered"]
)
DEAD_LETTERS = Counter(
    "itff_consumer_dead_letters_total", "Records sent to the dead-letter topic", ["reason"]
)
BARS = Counter(
    "itff_consumer_bars_total", "Alert bars stored, by kind (new, duplicate, late)", ["kind"]
)
BAR_REVISIONS = Counter(
    "itff_consumer_bar_revisions_total",
    "Stored bars revised by a later alert (the replaced values are kept in bar_revisions)",
)
BATCH_FAILURES = Counter(
    "itff_consumer_batch_failures_total",
    "Batches that failed and were rewound for redelivery (nothing committed)",
)
TRANSIENT_RETRIES = Counter(
    "itff_consumer_transient_retries_total",
    "Transient failures (database busy or unreachable, Kafka, timeouts) after which the batch "
    "was rewound and retried with backoff, by stage (read, write, publish, ...)",
    ["stage"],
)
MODEL_VERSION = Gauge(
    "itff_consumer_model_version_info",
    "1 for the model version each champion key is served with",
    ["model_key", "version"],
)
MODEL_RELOADS = Counter(
    "itff_consumer_model_reloads_total", "Hot reloads on model events, by result", ["result"]
)
OUTCOMES = Counter("itff_consumer_outcomes_total", "Signal outcomes resolved")
