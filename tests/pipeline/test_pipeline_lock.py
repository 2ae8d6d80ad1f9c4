"""One pipeline run at a time across processes, and the scheduler follows runs of other processes.

A manual `itff pipeline run` (a child process) while the scheduler's run holds the lock is refused
with one line; so is a second scheduler's run. After a failed scheduled run, a successful manual
run in another process clears `itff_pipeline_last_run_failed` at the next state refresh and the
pending retry does not run. A scheduler starting while another process's run holds the lock
leaves that run `running`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta

from prometheus_client import REGISTRY

from bot.contracts import utcnow
from bot.pipeline import RETRY, STATE, pipeline_job, pipeline_state_job
from storage import pipeline_lock as lock_repo
from storage import runs as run_repo
from tests.pipeline.conftest import Collect
from tests.support.cli import ROOT, run_itff
from tests.support.env import child_env
from tests.support.pipeline import write_sample_slice
from tests.support.postgres import both_stores

pytestmark = both_stores

MANUAL_RUN = """
import asyncio, sys
from bot.artifacts import ArtifactRegistry
from bot.contracts import load_settings
from bot.pipeline import run_pipeline
from storage.db import create_engine, create_session_factory
from tests.pipeline.conftest import Collect

async def main():
    settings = load_settings()
    engine = create_engine(settings.database_url)
    try:
        summary = await run_pipeline(
            settings, session_factory=create_session_factory(engine),
            registry=ArtifactRegistry(settings.artifact_dir), events=Collect(), trigger="manual",
        )
    finally:
        await engine.dispose()
    print(summary.status)

asyncio.run(main())
"""


class Gate(Collect):
    """A sink that holds the run (and so the lock) at its start until the test opens it."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.opened = asyncio.Event(), asyncio.Event()

    async def start(self) -> None:
        self.entered.set()
        await self.opened.wait()


def _env(settings, folder) -> dict[str, str]:
    return child_env(
        settings,
        ITFF_DATA_SOURCE=f"csv:{folder}",
        ITFF_SYMBOLS="SPX",
        ITFF_TARGETS="direction",
        ITFF_MODEL_TYPES="logreg",
        ITFF_PIPELINE_WORKERS="1",
        ITFF_LOG_JSON="false",
        OMP_NUM_THREADS="1",
    )


def _small(settings, tmp_path, **update):
    folder = write_sample_slice(tmp_path / "bars", {"SPX": "SPX"}, bars=1400)
    return folder, settings.model_copy(
        update={
            "symbols": ["SPX"], "targets": ["direction"], "model_types": ["logreg"],
            "data_source": f"csv:{folder}", "pipeline_workers": 1, **update,
        }
    )  # fmt: skip


async def _runs(session_factory) -> list[tuple[str, str]]:
    async with session_factory() as session:
        rows = await run_repo.list_runs(session=session, limit=100)
    return [(row.trigger, row.status) for row in reversed(rows)]


def _gauge(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_manual_run_while_the_scheduled_run_holds_the_lock_is_refused(
    settings, session_factory, tmp_path, make_scheduler_on
) -> None:
    # A lease of 2 s: the child takes longer than that to start, so only the heartbeat keeps it.
    folder, small = _small(settings, tmp_path, pipeline_lock_ttl_seconds=2)
    gate = Gate()
    scheduler = make_scheduler_on(small, session_factory, gate)
    other = make_scheduler_on(small.model_copy(update={"topic_prefix": "other"}), session_factory)
    refused_before = _gauge("itff_pipeline_runs_refused_total", trigger="schedule")
    await scheduler.start()
    try:
        scheduled = asyncio.create_task(pipeline_job(scheduler.runtime.name))
        await asyncio.wait_for(gate.entered.wait(), timeout=60)
        async with session_factory() as session:
            held = await lock_repo.current(session=session)
        assert held is not None
        manual = await asyncio.to_thread(run_itff, _env(settings, folder), "pipeline", "run")
        second = await other.runtime.run_pipeline("schedule")  # a second scheduler's run
        gate.opened.set()
        await asyncio.wait_for(scheduled, timeout=120)
    finally:
        gate.opened.set()
        await scheduler.shutdown()
    assert manual.returncode == 1, manual.stderr
    lines = manual.stderr.strip().splitlines()
    assert len(lines) == 1, manual.stderr
    assert "pipeline run refused" in lines[0]
    assert held.run_id in lines[0]
    assert f"schedule, pid {os.getpid()}" in lines[0]
    assert f"since {held.acquired_at:%Y-%m-%d %H:%M:%S} UTC" in lines[0]
    assert second is None
    assert _gauge("itff_pipeline_runs_refused_total", trigger="schedule") == refused_before + 1
    assert await _runs(session_factory) == [("schedule", "succeeded")]  # refusals record nothing
    async with session_factory() as session:
        assert await lock_repo.current(session=session) is None  # released


async def test_a_manual_success_elsewhere_clears_the_alert_and_the_pending_retry(
    settings, session_factory, tmp_path, make_scheduler_on
) -> None:
    folder, broken = _small(
        settings, tmp_path, data_source=f"csv:{tmp_path / 'no-such-folder'}",
        pipeline_retry_minutes=10, pipeline_state_refresh_seconds=1,
    )  # fmt: skip
    scheduler = make_scheduler_on(broken, session_factory)
    await scheduler.start()
    try:
        await pipeline_job(scheduler.runtime.name)  # the daily run fails; a retry is pending
        assert scheduler.scheduler.get_job(RETRY) is not None
        assert await pipeline_state_job(scheduler.runtime.name) is True
        assert _gauge("itff_pipeline_last_run_failed") == 1

        scheduler.scheduler.pause_job(STATE)  # no refresh until the manual run is over
        manual = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", MANUAL_RUN],
            env=_env(settings, folder) | {"PYTHONPATH": str(ROOT)},
            capture_output=True, text=True, check=False, timeout=240,
        )  # fmt: skip
        assert manual.stdout.strip().splitlines()[-1:] == ["succeeded"], manual.stderr
        assert _gauge("itff_pipeline_last_run_failed") == 1  # another process: not seen yet
        assert scheduler.scheduler.get_job(RETRY) is not None

        scheduler.scheduler.resume_job(STATE)
        for _ in range(30):  # one refresh is 1 s; allow for a loaded machine
            if _gauge("itff_pipeline_last_run_failed") == 0:
                break
            await asyncio.sleep(0.1)
        cleared = _gauge("itff_pipeline_last_run_failed")
        pending = scheduler.scheduler.get_job(RETRY)
        await pipeline_job(scheduler.runtime.name, 1)  # the retry, had it fired: skipped
    finally:
        await scheduler.shutdown()
    assert cleared == 0
    assert pending is None
    assert await _runs(session_factory) == [("schedule", "failed"), ("manual", "succeeded")]


async def test_start_up_fails_abandoned_runs_but_not_the_one_holding_a_live_lock(
    settings, session_factory, make_scheduler_on
) -> None:
    now = utcnow()
    async with session_factory() as session:
        for run_id in ("abandoned", "elsewhere"):
            await run_repo.start_run(
                session=session, run_id=run_id, trigger="manual", log_path=None
            )
        await lock_repo.acquire(
            session=session, run_id="elsewhere", holder="manual, pid 1 on other-host", now=now,
            ttl=timedelta(minutes=5),
        )  # fmt: skip
        await session.commit()
    scheduler = make_scheduler_on(settings, session_factory)
    await scheduler.start()
    await scheduler.shutdown()
    async with session_factory() as session:
        status = {run_id: (await run_repo.get_run(session=session, run_id=run_id)).status
                  for run_id in ("abandoned", "elsewhere")}  # fmt: skip
    assert status == {"abandoned": "failed", "elsewhere": "running"}


async def test_a_running_scheduler_fails_a_run_once_its_lock_expired(
    settings, session_factory, make_scheduler_on
) -> None:
    """The leader died during its run and a standby (already started) took over: the dead run
    fails at the next `pipeline-state` once its pipeline lock expired, not at the next restart."""
    scheduler = make_scheduler_on(settings, session_factory)
    await scheduler.start()
    try:
        now = utcnow()
        async with session_factory() as session:
            await run_repo.start_run(
                session=session, run_id="dead-leader", trigger="schedule", log_path=None
            )
            await lock_repo.acquire(
                session=session, run_id="dead-leader", holder="schedule, pid 1 on old-leader",
                now=now, ttl=timedelta(minutes=5),
            )  # fmt: skip
            await session.commit()
        await pipeline_state_job(scheduler.runtime.name)
        async with session_factory() as session:
            live = await run_repo.get_run(session=session, run_id="dead-leader")
            assert live.status == "running"  # its lock is live: it may still be running
            await lock_repo.heartbeat(  # its last beat, as seen once the lease ran out
                session=session, run_id="dead-leader", now=now - timedelta(minutes=10),
                ttl=timedelta(minutes=5),
            )  # fmt: skip
            await session.commit()
        await pipeline_state_job(scheduler.runtime.name)
    finally:
        await scheduler.shutdown()
    async with session_factory() as session:
        run = await run_repo.get_run(session=session, run_id="dead-leader")
    assert run.status == "failed"
    assert "interrupted" in (run.error or "")
