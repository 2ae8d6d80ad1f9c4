"""The scheduler runs the pipeline: on a short schedule, once after downtime, retried on failure."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_SUBMITTED
from sqlalchemy import func, select

from bot.artifacts import ArtifactRegistry
from bot.contracts import utcnow
from bot.pipeline import PIPELINE, RETRY, ItffScheduler, ensure_jobs, make_scheduler
from storage import runs as run_repo
from storage.tables import PipelineRun
from tests.support.pipeline import write_sample_slice
from tests.support.postgres import both_stores

pytestmark = both_stores


def _small(settings, tmp_path, **update):
    folder = write_sample_slice(tmp_path / "bars", {"SPX": "SPX"}, bars=1400)
    return settings.model_copy(
        update={
            "symbols": ["SPX"], "targets": ["direction"], "model_types": ["logreg"],
            "data_source": f"csv:{folder}", "pipeline_workers": 1, **update,
        }
    )  # fmt: skip


async def _runs(session_factory) -> list[PipelineRun]:
    async with session_factory() as session:
        return list(await run_repo.list_runs(session=session, limit=100))


async def _wait_for(scheduler: ItffScheduler, job_id: str, count: int = 1) -> list[object]:
    """Start the scheduler and wait until `job_id` has executed `count` times."""
    executed: list[object] = []
    done = asyncio.Event()

    def on_event(event) -> None:
        if event.job_id == job_id and event.code == EVENT_JOB_EXECUTED:
            executed.append(event)
            if len(executed) >= count:
                done.set()

    scheduler.add_listener(on_event, EVENT_JOB_EXECUTED)
    await scheduler.start()
    await asyncio.wait_for(done.wait(), timeout=240)
    return executed


async def test_scheduler_fires_the_pipeline_on_a_short_schedule(
    settings, session_factory, tmp_path, make_scheduler_on
) -> None:
    fast = _small(settings, tmp_path, retrain_cron="*/2 * * * * *")  # every 2 seconds
    scheduler = make_scheduler_on(fast, session_factory)
    try:
        await _wait_for(scheduler, PIPELINE)
    finally:
        await scheduler.shutdown()
    runs = await _runs(session_factory)
    assert runs
    assert runs[-1].trigger == "schedule"
    assert runs[-1].status == "succeeded", runs[-1].error
    assert ArtifactRegistry(fast.artifact_dir).champion("SPX-direction-logreg") is not None


async def test_a_run_missed_during_downtime_executes_once(
    settings, session_factory, tmp_path, make_scheduler_on
) -> None:
    every_minute = _small(settings, tmp_path, retrain_cron="* * * * *")
    # The process that went down: its stored job was due five minutes ago (five missed runs).
    before = make_scheduler(every_minute)
    before.start(paused=True)
    ensure_jobs(before, f"sched-{settings.topic_prefix}", every_minute)
    before.modify_job(PIPELINE, next_run_time=utcnow() - timedelta(minutes=5, seconds=1))
    before.shutdown(wait=False)

    submitted: list[object] = []
    scheduler = make_scheduler_on(every_minute, session_factory)
    scheduler.add_listener(
        lambda event: submitted.append(event) if event.job_id == PIPELINE else None,
        EVENT_JOB_SUBMITTED,
    )
    try:
        await _wait_for(scheduler, PIPELINE)
        runs_after_first = await _runs(session_factory)
    finally:
        await scheduler.shutdown()
    assert len(submitted[0].scheduled_run_times) == 1  # coalesced: five missed fire times, one run
    assert len(runs_after_first) == 1
    assert runs_after_first[0].status == "succeeded", runs_after_first[0].error


async def test_a_failed_run_is_retried_by_policy_then_given_up(
    settings, session_factory, tmp_path, make_scheduler_on
) -> None:
    from bot.pipeline import pipeline_job

    broken = _small(
        settings, tmp_path, data_source=f"csv:{tmp_path / 'no-such-folder'}",
        pipeline_retry_minutes=0.01, pipeline_max_retries=1,
    )  # fmt: skip
    scheduler = make_scheduler_on(broken, session_factory)
    retried = asyncio.Event()
    scheduler.add_listener(
        lambda event: retried.set() if event.job_id == RETRY else None, EVENT_JOB_EXECUTED
    )
    await scheduler.start()
    try:
        await pipeline_job(scheduler.runtime.name)  # the daily run, now
        await asyncio.wait_for(retried.wait(), timeout=120)
        leftover = scheduler.scheduler.get_job(RETRY)
    finally:
        await scheduler.shutdown()
    runs = await _runs(session_factory)
    assert [(run.trigger, run.status) for run in reversed(runs)] == [
        ("schedule", "failed"), ("retry", "failed"),
    ]  # fmt: skip
    assert "no-such-folder" in (runs[0].error or "")
    assert leftover is None  # max_retries=1: no third attempt
    async with session_factory() as session:
        count = await session.scalar(select(func.count()).select_from(PipelineRun))
    assert count == 2
