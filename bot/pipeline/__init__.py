"""The daily pipeline: refresh, train, promote, retention, the scheduler (the part of `bot` that
touches `storage`)."""

from bot.pipeline import archive
from bot.pipeline.champions import ChampionSwitch, bucket_mirror
from bot.pipeline.daily import DailyReport, daily_report, previous_day
from bot.pipeline.lock import PipelineBusy
from bot.pipeline.parity import ParityReport, parity_report
from bot.pipeline.refresh import backfill, refresh_symbol, stored_bars
from bot.pipeline.retention import RetentionPolicy, apply_retention, expired_logs, log_date
from bot.pipeline.review import ReviewReport, review_report
from bot.pipeline.run import RunSummary, record_version, run_pipeline
from bot.pipeline.scheduler import (
    DAILY,
    LIVE,
    PIPELINE,
    RETRY,
    STATE,
    VERIFY,
    WEEKLY,
    ItffScheduler,
    daily_report_job,
    ensure_jobs,
    make_scheduler,
    migrate_job_refs,
    pipeline_job,
    pipeline_state_job,
    refresh_drift_gauge,
)
from bot.pipeline.snapshots import rebuild_live_metrics, snapshot_live_metrics
from bot.pipeline.train import TrainOutcome, TrainTask, run_tasks
from bot.pipeline.weekly import (
    ChartRenderer,
    WeeklyReport,
    apply_proposals,
    chart_path,
    previous_week,
    weekly_report,
)

__all__ = [
    "DAILY",
    "LIVE",
    "PIPELINE",
    "RETRY",
    "STATE",
    "VERIFY",
    "WEEKLY",
    "ChampionSwitch",
    "ChartRenderer",
    "DailyReport",
    "ItffScheduler",
    "ParityReport",
    "PipelineBusy",
    "RetentionPolicy",
    "ReviewReport",
    "RunSummary",
    "TrainOutcome",
    "TrainTask",
    "WeeklyReport",
    "apply_proposals",
    "apply_retention",
    "archive",
    "backfill",
    "bucket_mirror",
    "chart_path",
    "daily_report",
    "daily_report_job",
    "ensure_jobs",
    "expired_logs",
    "log_date",
    "make_scheduler",
    "migrate_job_refs",
    "parity_report",
    "pipeline_job",
    "pipeline_state_job",
    "previous_day",
    "previous_week",
    "rebuild_live_metrics",
    "record_version",
    "refresh_drift_gauge",
    "refresh_symbol",
    "review_report",
    "run_pipeline",
    "run_tasks",
    "snapshot_live_metrics",
    "stored_bars",
    "weekly_report",
    "weekly_report_job",
]
