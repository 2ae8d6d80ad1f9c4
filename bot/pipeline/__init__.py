"""The daily pipeline: refresh, train, promote, retention, the scheduler (the part of `bot` that
touches `storage`)."""

from bot.pipeline import archive
from bot.pipeline.champions import ChampionSwitch, bucket_mirror
from bot.pipeline.lock import PipelineBusy
from bot.pipeline.refresh import backfill, refresh_symbol, stored_bars
from bot.pipeline.retention import RetentionPolicy, apply_retention, expired_logs, log_date
from bot.pipeline.run import RunSummary, record_version, run_pipeline
from bot.pipeline.scheduler import (
    LIVE,
    PIPELINE,
    RETRY,
    STATE,
    VERIFY,
    ItffScheduler,
    ensure_jobs,
    make_scheduler,
    migrate_job_refs,
    pipeline_job,
    pipeline_state_job,
    refresh_drift_gauge,
)
from bot.pipeline.snapshots import rebuild_live_metrics, snapshot_live_metrics
from bot.pipeline.train import TrainOutcome, TrainTask, run_tasks

__all__ = [
    "LIVE",
    "PIPELINE",
    "RETRY",
    "STATE",
    "VERIFY",
    "ChampionSwitch",
    "ItffScheduler",
    "PipelineBusy",
    "RetentionPolicy",
    "RunSummary",
    "TrainOutcome",
    "TrainTask",
    "apply_retention",
    "archive",
    "backfill",
    "bucket_mirror",
    "ensure_jobs",
    "expired_logs",
    "log_date",
    "make_scheduler",
    "migrate_job_refs",
    "pipeline_job",
    "pipeline_state_job",
    "rebuild_live_metrics",
    "record_version",
    "refresh_drift_gauge",
    "refresh_symbol",
    "run_pipeline",
    "run_tasks",
    "snapshot_live_metrics",
    "stored_bars",
]
