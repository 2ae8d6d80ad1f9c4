"""`itff scheduler`: APScheduler jobs with a persistent SQLAlchemy job store.

Jobs (all UTC, coalesced, at most one instance each):

* `pipeline` on `ITFF_RETRAIN_CRON`; a failed run is retried after `ITFF_PIPELINE_RETRY_MINUTES`,
  at most `ITFF_PIPELINE_MAX_RETRIES` times in a row (job `pipeline-retry`, stored too), unless a
  run in any process succeeded since;
* `pipeline-state` every `ITFF_PIPELINE_STATE_REFRESH_SECONDS`: the pipeline gauges follow
  `pipeline_runs`, whichever process ran the pipeline, and a success there cancels a pending retry;
* `verify-artifacts` every `ITFF_VERIFY_INTERVAL_MINUTES`: re-hash every published file;
* `retention` on `ITFF_RETENTION_CRON` (bot/pipeline/retention.py);
* `daily-report` on `ITFF_DAILY_REPORT_CRON`: the report of the previous UTC day
  (`bot.pipeline.daily`, the code of `itff report daily`);
* `weekly-report` on `ITFF_WEEKLY_REPORT_CRON`: the report of the previous ISO week
  (`bot.pipeline.weekly`, the code of `itff report weekly`);
* `live-metrics` every `ITFF_LIVE_METRICS_INTERVAL_MINUTES` (`bot.pipeline.snapshots`),
  then `itff_live_backtest_drift` from the stored snapshots and champions (`bot.core.drift_rule`).

Jobs live in the database, so a run missed while the scheduler was down fires once at start-up
(coalesced) when it is less than `ITFF_PIPELINE_MISFIRE_GRACE_SECONDS` late. The stored jobs name
their function by reference and carry only the runtime name; settings and secrets stay in memory.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobEvent
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.artifacts import ArtifactRegistry, VerificationResult
from bot.contracts import ConfigError, Settings, utcnow
from bot.core import GAUGE_WINDOW, gauge_values
from bot.pipeline import telemetry as m
from bot.pipeline.champions import EventSink
from bot.pipeline.daily import DailyReport, Snapshot, daily_report, previous_day
from bot.pipeline.leader import LeaderLease
from bot.pipeline.lock import PipelineBusy
from bot.pipeline.retention import RetentionPolicy, RetentionReport, apply_retention
from bot.pipeline.run import RunSummary, run_pipeline
from bot.pipeline.same_period import resolved_frame, same_period_metrics
from bot.pipeline.snapshots import snapshot_live_metrics
from bot.pipeline.weekly import ChartRenderer, WeeklyReport, previous_week, weekly_report
from bot.runtime import get_logger
from storage import model_versions as model_repo
from storage import pipeline_lock as lock_repo
from storage import runs as run_repo
from storage.db import sync_url
from storage.signals import latest_live_metrics
from storage.tables import ModelVersion, PipelineRun

log = get_logger(__name__)

PIPELINE, RETRY, VERIFY, RETENTION, LIVE, STATE, DAILY, WEEKLY = (
    "pipeline", "pipeline-retry", "verify-artifacts", "retention", "live-metrics", "pipeline-state",
    "daily-report", "weekly-report",
)  # fmt: skip
JOB_TABLE = "apscheduler_jobs"
GAUGE_SPAN = timedelta(days=30)  # GAUGE_WINDOW
SHORT_GRACE_SECONDS = 3600
_RUNTIMES: dict[str, Runtime] = {}
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
CRON_FIELDS = ("minute", "hour", "day", "month", "day_of_week")


def crontab_trigger(expr: str) -> CronTrigger:
    """A UTC trigger from a crontab line: 5 fields, or 6 with seconds first (tests, demos).

    Day-of-week numbers follow crontab (0 or 7 = Sunday), not APScheduler 3's (0 = Monday).
    """
    parts = expr.split()
    if len(parts) not in (5, 6):
        raise ConfigError(
            f"cron expression {expr!r} needs 5 fields (minute hour day month weekday) "
            "or 6 with seconds first, e.g. '30 2 * * *'"
        )
    names = ("second", *CRON_FIELDS) if len(parts) == 6 else CRON_FIELDS  # noqa: PLR2004
    fields = dict(zip(names, parts, strict=True))
    fields["day_of_week"] = _crontab_weekdays(fields["day_of_week"])
    try:
        return CronTrigger(timezone="UTC", **fields)
    except ValueError as exc:
        raise ConfigError(f"cron expression {expr!r} is invalid: {exc}") from exc


def _crontab_weekdays(field_value: str) -> str:
    """Translate crontab weekday numbers into names; `*`, names and steps pass through."""
    out = []
    for item in field_value.split(","):
        base, _, step = item.partition("/")
        if not any(char.isdigit() for char in base):
            out.append(item)
            continue
        low, _, high = base.partition("-")
        numbers = range(int(low), int(high or low) + 1, int(step or 1))
        out.extend(WEEKDAYS[number % 7] for number in numbers)
    return ",".join(dict.fromkeys(out))


@dataclass
class Runtime:
    """What the stored jobs act on; registered under `name` while the scheduler runs."""

    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    registry: ArtifactRegistry
    events: EventSink
    scheduler: AsyncIOScheduler
    name: str = "itff"
    pipeline_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    snapshot: Snapshot | None = None  # the dashboard's PNG renderer, given by the CLI
    charts: ChartRenderer | None = None  # the weekly report's PNG charts, given by the CLI

    async def run_pipeline(self, trigger: str) -> RunSummary | None:
        """One run, or None (logged and counted) while another run holds the lock."""
        if self.pipeline_lock.locked():
            _refused(trigger, "a pipeline run of this scheduler is in progress")
            return None
        async with self.pipeline_lock:
            try:
                return await run_pipeline(
                    self.settings,
                    session_factory=self.session_factory,
                    registry=self.registry,
                    events=self.events,
                    trigger=trigger,
                )
            except PipelineBusy as busy:
                _refused(trigger, str(busy))
                return None


def _refused(trigger: str, reason: str) -> None:
    m.PIPELINE_REFUSED.labels(trigger).inc()
    log.warning("pipeline_skipped", trigger=trigger, reason=reason)


def _runtime(name: str) -> Runtime:
    try:
        return _RUNTIMES[name]
    except KeyError:
        raise LookupError(f"no scheduler runtime {name!r} is running in this process") from None


async def pipeline_job(name: str, attempt: int = 0) -> None:
    """The daily pipeline (attempt 0) or one of its retries, skipped when a run (any process)
    succeeded after the failure it retries."""
    runtime = _runtime(name)
    failed_at = utcnow() - timedelta(minutes=runtime.settings.pipeline_retry_minutes)
    if attempt and await _succeeded_since(runtime, failed_at):
        log.info("pipeline_retry_not_needed", attempt=attempt, reason="a later run succeeded")
        return
    try:
        summary = await runtime.run_pipeline("schedule" if attempt == 0 else "retry")
    except Exception as exc:  # the run could not even be recorded (database down)
        m.PIPELINE_RUNS.labels("failed", "schedule" if attempt == 0 else "retry").inc()
        m.LAST_RUN_FAILED.set(1)
        log.error("pipeline_not_recorded", error=f"{type(exc).__name__}: {exc}")
        schedule_retry(runtime, attempt + 1)
        return
    if summary is None:
        return
    if summary.succeeded:
        _cancel_retry(runtime)
    else:
        schedule_retry(runtime, attempt + 1)


def schedule_retry(runtime: Runtime, attempt: int) -> None:
    """The retry policy: again after `pipeline_retry_minutes`, at most `pipeline_max_retries`."""
    settings = runtime.settings
    if attempt > settings.pipeline_max_retries:
        log.error("pipeline_retries_exhausted", attempts=attempt - 1)
        return
    when = utcnow() + timedelta(minutes=settings.pipeline_retry_minutes)
    runtime.scheduler.add_job(
        "bot.pipeline.scheduler:pipeline_job",
        DateTrigger(run_date=when),
        args=[runtime.name, attempt],
        id=RETRY,
        name="pipeline retry",
        replace_existing=True,
        misfire_grace_time=settings.pipeline_misfire_grace_seconds,
    )
    log.warning("pipeline_retry_scheduled", attempt=attempt, at=when.isoformat())


def _cancel_retry(runtime: Runtime) -> None:
    if runtime.scheduler.get_job(RETRY) is not None:
        runtime.scheduler.remove_job(RETRY)


async def pipeline_state_job(name: str) -> bool:
    """Fail the runs of dead processes (`fail_dead_runs`), then set the pipeline gauges from
    `pipeline_runs` (runs of every process); a success after the failure a pending retry answers
    cancels the retry. Returns `last_run_failed`."""
    runtime = _runtime(name)
    await fail_dead_runs(runtime.session_factory)
    async with runtime.session_factory() as session:
        latest = await run_repo.latest_finished(session=session)
        success = await run_repo.last_success(session=session)
    if success is not None and success.finished_at is not None:
        m.LAST_SUCCESS.set(success.finished_at.timestamp())
    failed = latest is not None and latest.status == run_repo.FAILED
    retry = runtime.scheduler.get_job(RETRY)
    if retry is not None and retry.next_run_time is not None:
        failed_at = retry.next_run_time - timedelta(minutes=runtime.settings.pipeline_retry_minutes)
        if _finished_after(success, failed_at):
            _cancel_retry(runtime)
            log.info("pipeline_retry_cancelled", reason="a later run succeeded")
        else:
            failed = True  # the last attempt failed, even if it could not be recorded
    m.LAST_RUN_FAILED.set(int(failed))
    return failed


async def _succeeded_since(runtime: Runtime, when: datetime) -> bool:
    async with runtime.session_factory() as session:
        success = await run_repo.last_success(session=session)
    return _finished_after(success, when)


def _finished_after(run: PipelineRun | None, when: datetime) -> bool:
    return run is not None and run.finished_at is not None and run.finished_at > when


async def verify_job(name: str) -> list[VerificationResult]:
    """Re-hash every published file against its manifest; mark and count mismatches."""
    runtime = _runtime(name)
    results = await asyncio.to_thread(runtime.registry.verify)
    async with runtime.session_factory() as session:
        for result in results:
            await model_repo.mark_verified(
                session=session, key=result.key, version=result.version, ok=result.ok
            )
        await session.commit()
    failures = [result for result in results if not result.ok]
    for failure in failures:
        log.error(
            "artifact_verification_failed",
            model_key=failure.key,
            version=failure.version,
            file=failure.file,
            problem=failure.problem,
        )
    m.VERIFICATION_FAILURES.inc(len(failures))
    m.VERIFIED_VERSIONS.set(len(results))
    return results


async def retention_job(name: str) -> RetentionReport:
    runtime = _runtime(name)
    report = await apply_retention(
        policy=RetentionPolicy.from_settings(runtime.settings),
        session_factory=runtime.session_factory,
        registry=runtime.registry,
        log_dir=runtime.settings.log_dir,
        now=utcnow(),
        report_dir=runtime.settings.report_dir,
    )
    for kind, count in report.counts().items():
        m.RETENTION_DELETED.labels(kind).inc(count)
    log.info("retention_applied", **report.counts())
    return report


async def live_metrics_job(name: str) -> int:
    """Snapshot live metrics (7d, 30d, all) of every model (the outcome worker's function)."""
    runtime = _runtime(name)
    rows = await snapshot_live_metrics(
        session_factory=runtime.session_factory, cost_bps=runtime.settings.cost_bps
    )
    drift = await refresh_drift_gauge(
        runtime.session_factory, settings=runtime.settings, registry=runtime.registry
    )
    log.info("live_metrics_snapshot", rows=rows, drift_series=len(drift))
    return rows


async def daily_report_job(name: str) -> DailyReport:
    """The report of the previous UTC day (`itff report daily`)."""
    runtime = _runtime(name)
    return await daily_report(
        runtime.settings,
        session_factory=runtime.session_factory,
        day=previous_day(),
        snapshot=runtime.snapshot,
        registry=runtime.registry,
    )


async def weekly_report_job(name: str) -> WeeklyReport:
    """The report of the previous ISO week (`itff report weekly`)."""
    runtime = _runtime(name)
    return await weekly_report(
        runtime.settings,
        session_factory=runtime.session_factory,
        week=previous_week(),
        registry=runtime.registry,
        charts=runtime.charts,
    )


async def refresh_drift_gauge(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    settings: Settings | None = None,
    registry: ArtifactRegistry | None = None,
    now: datetime | None = None,
) -> dict[tuple[str, str, str], float]:
    """Set `itff_live_backtest_drift` from the stored champions and latest live snapshots: against
    the backtest on the live period (the champion's artifact in `registry` over the stored bars)
    where it covers enough bars, the stored backtest otherwise; the `comparison` label says which.
    Without `settings` and `registry`, always against the stored backtest."""
    async with session_factory() as session:
        champions = await model_repo.list_versions(session=session, status=model_repo.CHAMPION)
        live = await latest_live_metrics(session=session, window=GAUGE_WINDOW)
    same = None
    if settings is not None and registry is not None:
        same = await _gauge_same_period(settings, session_factory, registry, champions, now)
    stored = {row.model_key: dict(row.metrics) for row in champions}
    values = gauge_values(live, stored, same_period=same)
    gauge = m.LIVE_BACKTEST_DRIFT
    shown = {
        (sample.labels["model_key"], sample.labels["metric"], sample.labels["comparison"])
        for family in gauge.collect()
        for sample in family.samples
    }
    for labels in shown - values.keys():  # a former champion, too few signals, or switched
        gauge.remove(*labels)
    for (key, name, comparison), value in values.items():
        gauge.labels(model_key=key, metric=name, comparison=comparison).set(value)
    return values


async def _gauge_same_period(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    registry: ArtifactRegistry,
    champions: Sequence[ModelVersion],
    now: datetime | None,
) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per champion: live and batch-path metrics over the gauge's window (as the weekly report)."""
    at = now or utcnow()
    # live_metrics starts the window at the UTC midnight before `at - span`: read a day more
    frame = await resolved_frame(
        session_factory, since=at - GAUGE_SPAN - timedelta(days=1), until=at
    )
    measured = await same_period_metrics(
        settings, session_factory, registry, champions=champions, frame=frame, now=at,
        windows=((GAUGE_WINDOW, GAUGE_SPAN),),
    )  # fmt: skip
    return {key: pair for (key, _window), pair in measured.items()}


def _jobs(settings: Settings) -> list[tuple[str, str, Any, int]]:
    """(id, function reference, trigger, misfire grace seconds) of every recurring job."""
    return [
        (
            PIPELINE,
            "bot.pipeline.scheduler:pipeline_job",
            crontab_trigger(settings.retrain_cron),
            settings.pipeline_misfire_grace_seconds,
        ),
        (
            STATE,
            "bot.pipeline.scheduler:pipeline_state_job",
            IntervalTrigger(seconds=settings.pipeline_state_refresh_seconds),
            SHORT_GRACE_SECONDS,
        ),
        (
            VERIFY,
            "bot.pipeline.scheduler:verify_job",
            IntervalTrigger(minutes=settings.verify_interval_minutes),
            SHORT_GRACE_SECONDS,
        ),
        (
            RETENTION,
            "bot.pipeline.scheduler:retention_job",
            crontab_trigger(settings.retention_cron),
            SHORT_GRACE_SECONDS,
        ),
        (
            DAILY,
            "bot.pipeline.scheduler:daily_report_job",
            crontab_trigger(settings.daily_report_cron),
            settings.pipeline_misfire_grace_seconds,
        ),
        (
            WEEKLY,
            "bot.pipeline.scheduler:weekly_report_job",
            crontab_trigger(settings.weekly_report_cron),
            settings.pipeline_misfire_grace_seconds,
        ),
        (
            LIVE,
            "bot.pipeline.scheduler:live_metrics_job",
            IntervalTrigger(minutes=settings.live_metrics_interval_minutes),
            SHORT_GRACE_SECONDS,
        ),
    ]


# Stored jobs name their function by module path; where a module moved, the old path is rewritten
# before the scheduler reads the store (issue 13 moved bot/scheduler.py into bot/pipeline/).
MOVED_JOB_MODULES = {"bot.scheduler": "bot.pipeline.scheduler"}


def migrate_job_refs(url: str, table: str = JOB_TABLE) -> int:
    """Rewrite the function references of stored jobs whose module moved; the jobs rewritten.

    APScheduler drops a stored job whose function no longer imports (and with it a pending retry
    and the next run time of a missed run), so this runs before the scheduler starts.
    """
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:
            if not sqlalchemy.inspect(connection).has_table(table):
                return 0
            jobs = sqlalchemy.table(table, sqlalchemy.column("id"), sqlalchemy.column("job_state"))
            rows = connection.execute(sqlalchemy.select(jobs.c.id, jobs.c.job_state)).all()
            moved = [(job_id, _moved(state)) for job_id, state in rows]
            for job_id, state in moved:
                if state is not None:
                    update = jobs.update().where(jobs.c.id == job_id).values(job_state=state)
                    connection.execute(update)
    finally:
        engine.dispose()
    return sum(state is not None for _, state in moved)


def _moved(job_state: bytes) -> bytes | None:
    """The job state with its function's module renamed, or None when it did not move."""
    state = pickle.loads(job_state)  # noqa: S301 - APScheduler's own job state, in our database
    module, _, name = str(state.get("func", "")).partition(":")
    if module not in MOVED_JOB_MODULES:
        return None
    state["func"] = f"{MOVED_JOB_MODULES[module]}:{name}"
    return pickle.dumps(state, pickle.HIGHEST_PROTOCOL)


def make_scheduler(settings: Settings) -> AsyncIOScheduler:
    store = SQLAlchemyJobStore(url=sync_url(settings.database_url), tablename=JOB_TABLE)
    return AsyncIOScheduler(
        jobstores={"default": store},
        job_defaults={"coalesce": True, "max_instances": 1},
        timezone="UTC",
    )


def ensure_jobs(scheduler: AsyncIOScheduler, runtime_name: str, settings: Settings) -> None:
    """Add missing jobs; keep a stored job's next run time (so a missed run still fires) unless
    its schedule changed in the settings."""
    for job_id, func, trigger, grace in _jobs(settings):
        stored = scheduler.get_job(job_id)
        if stored is None:
            scheduler.add_job(
                func, trigger, id=job_id, name=job_id, args=[runtime_name],
                misfire_grace_time=grace, coalesce=True, max_instances=1,
            )  # fmt: skip
            continue
        scheduler.modify_job(job_id, func=func, args=[runtime_name], misfire_grace_time=grace)
        if str(stored.trigger) != str(trigger):
            scheduler.reschedule_job(job_id, trigger=trigger)
    retry = scheduler.get_job(RETRY)
    if retry is not None:
        scheduler.modify_job(RETRY, args=[runtime_name, *retry.args[1:]])


class ItffScheduler:
    """Owns the APScheduler instance and the runtime its stored jobs refer to."""

    def __init__(
        self,
        settings: Settings,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        registry: ArtifactRegistry,
        events: EventSink,
        name: str = "itff",
        snapshot: Snapshot | None = None,
        charts: ChartRenderer | None = None,
    ) -> None:
        self.scheduler = make_scheduler(settings)
        self.runtime = Runtime(settings, session_factory, registry, events, self.scheduler, name)
        self.runtime.snapshot = snapshot
        self.leader = LeaderLease(
            session_factory,
            ttl=settings.scheduler_leader_ttl_seconds,
            on_elected=self._lead,
            on_deposed=self._stand_by,
        )
        self.runtime.charts = charts

    async def start(self) -> None:
        """Register the runtime, then run the jobs while this process holds the leader lease
        (at once when no other scheduler leads), standing by otherwise (bot/pipeline/leader.py)."""
        runtime = self.runtime
        _RUNTIMES[runtime.name] = runtime
        m.DRIFT_MARGIN.set(runtime.settings.drift_margin)  # the drift alert's threshold
        self.scheduler.add_listener(
            _count_job, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED
        )
        await self.leader.start()

    @property
    def leading(self) -> bool:
        """True while this process holds the leader lease and runs the jobs."""
        return self.leader.leading

    async def _lead(self) -> None:
        """Restore metrics, mark interrupted runs, then start (or resume) the jobs."""
        runtime = self.runtime
        await _restore_state(runtime)
        url = sync_url(runtime.settings.database_url)
        if moved := await asyncio.to_thread(migrate_job_refs, url):
            log.info("scheduler_jobs_migrated", jobs=moved)
        if not self.scheduler.running:
            self.scheduler.start(paused=True)
        await asyncio.to_thread(ensure_jobs, self.scheduler, runtime.name, runtime.settings)
        await pipeline_state_job(runtime.name)  # the gauges from the database before any job
        self.scheduler.resume()
        log.info("scheduler_started", jobs=[job.id for job in self.scheduler.get_jobs()])

    async def _stand_by(self) -> None:
        """No job starts any more here; one already running finishes (the pipeline lock keeps a
        run from overlapping the new leader's)."""
        if self.scheduler.running:
            self.scheduler.pause()
        log.info("scheduler_paused", reason="not the leader")

    async def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        async with self.runtime.pipeline_lock:  # let a running pipeline finish its record
            pass
        await self.leader.stop()
        _RUNTIMES.pop(self.runtime.name, None)
        log.info("scheduler_stopped")

    def add_listener(self, callback: Callable[[Any], None], mask: int) -> None:
        self.scheduler.add_listener(callback, mask)


def _count_job(event: JobEvent) -> None:
    result = {EVENT_JOB_EXECUTED: "ok", EVENT_JOB_ERROR: "error"}.get(event.code, "missed")
    job = RETRY if event.job_id == RETRY else event.job_id
    m.JOB_RUNS.labels(job, result).inc()
    if result == "error":
        log.error(
            "scheduler_job_failed", job=event.job_id, error=repr(getattr(event, "exception", None))
        )


async def _restore_state(runtime: Runtime) -> None:
    """Fail the runs of dead processes, then the drift gauge from the last snapshot."""
    await fail_dead_runs(runtime.session_factory)
    await refresh_drift_gauge(  # from the last snapshot, before the first job
        runtime.session_factory, settings=runtime.settings, registry=runtime.registry
    )


async def fail_dead_runs(session_factory: async_sessionmaker[AsyncSession]) -> int:
    """Runs left `running` by a dead process fail, except the one holding a live lock (a run of
    this or another process, `itff pipeline run`): a run holds the lock from before it is
    recorded until after it finishes, so a `running` run without it is one whose process died.
    At start-up and in `pipeline-state`, so that a dead leader's run fails once its lock expired
    even though the scheduler that took over had started before."""
    async with session_factory() as session:
        lock = await lock_repo.current(session=session)
        live = lock.run_id if lock is not None and lock.expires_at > utcnow() else None
        interrupted = await run_repo.fail_interrupted(
            session=session, reason="interrupted: the process stopped during the run", keep=live
        )
        await session.commit()
    if interrupted:
        log.warning("pipeline_runs_interrupted", count=interrupted)
    return interrupted
