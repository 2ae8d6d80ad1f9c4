"""Prometheus metrics of the pipeline and the scheduler (served on `ITFF_SCHEDULER_METRICS_PORT`).

`itff_pipeline_last_success_timestamp_seconds` feeds the alert "no successful run for 26 h".
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PIPELINE_RUNS = Counter(
    "itff_pipeline_runs_total", "Pipeline runs by final status.", ["status", "trigger"]
)
PIPELINE_DURATION = Histogram(
    "itff_pipeline_run_duration_seconds",
    "Wall time of a pipeline run.",
    buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)
PIPELINE_MODELS = Counter(
    "itff_pipeline_models_total",
    "Model lines handled by pipeline runs, by outcome (promoted, rejected, failed, skipped).",
    ["outcome"],
)
LAST_SUCCESS = Gauge(
    "itff_pipeline_last_success_timestamp_seconds",
    "Unix time at which the last successful pipeline run finished (0: none yet).",
)
LAST_RUN_FAILED = Gauge(
    "itff_pipeline_last_run_failed",
    "1 when the most recent pipeline run (any process) failed or a retry is pending, else 0.",
)
PIPELINE_REFUSED = Counter(
    "itff_pipeline_runs_refused_total",
    "Scheduled pipeline runs not started because another run (any process) held the lock.",
    ["trigger"],
)
PARITY_MISMATCHES = Counter(
    "itff_parity_mismatches",
    "Resolved live signals whose prediction or action the batch path (itff evaluate's) does not "
    "reproduce from the stored bars with the same model version.",
    ["model_key"],
)
VERIFICATION_FAILURES = Counter(
    "itff_artifact_verification_failures_total",
    "Published artifact versions whose files do not match their manifest.",
)
VERIFIED_VERSIONS = Gauge(
    "itff_artifact_verified_versions", "Versions checked by the last verification job."
)
JOB_RUNS = Counter(
    "itff_scheduler_job_runs_total",
    "Scheduled job executions by job and result.",
    ["job", "result"],
)
RETENTION_DELETED = Counter(
    "itff_retention_deleted_total", "Items removed by the retention job, by kind.", ["kind"]
)
LIVE_BACKTEST_DRIFT = Gauge(
    "itff_live_backtest_drift",
    "|live - backtest| of each compared rate metric of a champion over the 30d window (fraction), "
    "once it has enough resolved signals; above ITFF_DRIFT_MARGIN is drift. comparison: "
    "live_period (the batch path on exactly the live bars) or stored (the stored backtest).",
    ["model_key", "metric", "comparison"],
)
DRIFT_MARGIN = Gauge(
    "itff_drift_margin",
    "ITFF_DRIFT_MARGIN of the running scheduler: the ItffLiveBacktestDrift alert compares "
    "itff_live_backtest_drift with it, so the alert follows the setting.",
)
ARTIFACT_PUSHES = Counter(
    "itff_artifact_pushes_total",
    "Pushes of a key's artifacts to object storage after a promotion or rollback, by result.",
    ["result"],
)
SCHEDULER_LEADER = Gauge(
    "itff_scheduler_leader",
    "1 while this scheduler process holds the leader lease and runs the jobs, 0 on standby.",
)
LEADER_CHANGES = Counter(
    "itff_scheduler_leader_changes_total",
    "Leadership changes of this scheduler process: elected (took the lease) or deposed (lost it, "
    "could not renew it for a whole TTL, or stopped).",
    ["change"],
)
