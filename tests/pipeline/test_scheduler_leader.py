"""Two `itff scheduler` processes on one database: exactly one runs the jobs; when it is SIGKILLed,
the other takes the leader lease over once it expires, and a stopped leader hands it over at once.

Each process serves its own metrics: `itff_scheduler_leader` says who leads, and the runs of the
`pipeline-state` job (every second here) say who actually runs the jobs.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Settings
from bot.pipeline import PIPELINE, STATE
from storage import pipeline_lock as lock_repo
from storage.tables import PipelineLock
from tests.support.cli import ROOT
from tests.support.consumer import eventually
from tests.support.env import child_env
from tests.support.kafka import free_port
from tests.support.postgres import both_stores

pytestmark = [both_stores]
TTL = 3.0


class Scheduler:
    """One real `itff scheduler` child process with its own metrics port and log file."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.port = free_port()
        self.log = log
        env = child_env(
            settings,
            ITFF_SCHEDULER_LEADER_TTL_SECONDS=str(TTL),
            ITFF_PIPELINE_STATE_REFRESH_SECONDS="1",
            ITFF_SCHEDULER_METRICS_PORT=str(self.port),
            ITFF_LOG_JSON="true",
            PYTHONPATH=str(ROOT),
        )
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from bot.cli import main; main()", "scheduler"],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def metrics(self) -> list[Sample] | None:
        """The samples the process serves, None while it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return None
        return [sample for f in text_string_to_metric_families(text) for sample in f.samples]

    async def leads(self) -> bool | None:
        samples = await asyncio.to_thread(self.metrics)
        if samples is None:
            return None
        return any(s.name == "itff_scheduler_leader" and s.value == 1 for s in samples)

    async def state_runs(self) -> float:
        samples = await asyncio.to_thread(self.metrics) or []
        name, wanted = "itff_scheduler_job_runs_total", {"job": "pipeline-state", "result": "ok"}
        return sum(s.value for s in samples if s.name == name and s.labels == wanted)

    def text(self) -> str:
        return self.log.read_text()[-4000:]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


async def _lease(session_factory: async_sessionmaker[AsyncSession]) -> PipelineLock | None:
    async with session_factory() as session:
        return await lock_repo.current(session=session, name=lock_repo.SCHEDULER)


async def _one_leader(schedulers: list[Scheduler]) -> Scheduler | None:
    states = [await s.leads() for s in schedulers]
    if None in states or states.count(True) != 1:
        return None
    return schedulers[states.index(True)]


async def test_two_schedulers_one_leader_and_a_takeover_after_sigkill(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    pair = [Scheduler(settings, tmp_path / "a.log"), Scheduler(settings, tmp_path / "b.log")]
    try:

        async def settled() -> bool:
            return await _one_leader(pair) is not None

        assert await eventually(settled, within=180), pair[0].text() + pair[1].text()
        leader = await _one_leader(pair)
        assert leader is not None
        standby = pair[1 - pair.index(leader)]
        lease = await _lease(session_factory)
        assert lease is not None
        assert f"pid {leader.process.pid} " in lease.holder
        # over two TTLs: the leader stays the only one, and only it runs the jobs
        before = await leader.state_runs()
        for _ in range(int(2 * TTL / 0.5)):
            assert await _one_leader(pair) is leader
            await asyncio.sleep(0.5)
        assert await leader.state_runs() > before
        assert await standby.state_runs() == 0

        leader.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        assert leader.process.wait(timeout=30) == -signal.SIGKILL
        dead = await _lease(session_factory)
        assert dead is not None
        assert dead.run_id == lease.run_id  # nobody took a live lease

        async def took_over() -> bool:
            return bool(await standby.leads())

        assert await eventually(took_over, within=4 * TTL), standby.text()
        takeover = time.monotonic() - killed_at
        new = await _lease(session_factory)
        assert new is not None
        assert f"pid {standby.process.pid} " in new.holder
        assert new.acquired_at >= dead.expires_at  # only once the dead leader's lease expired
        runs = await standby.state_runs()

        async def runs_jobs() -> bool:
            return await standby.state_runs() > runs

        assert await eventually(runs_jobs, within=30), standby.text()
        print(  # the figure the issue asks for
            f"\nleader takeover after SIGKILL: {takeover:.2f} s (TTL {TTL:.0f} s, lease expired "
            f"{(new.acquired_at - dead.expires_at).total_seconds():.2f} s before the takeover)"
        )
        assert takeover <= TTL + TTL / 3 + 2  # expiry (<= TTL) + one poll (TTL/3) + start slack
        assert standby.stop() == 0, standby.text()
        assert await _lease(session_factory) is None  # a clean stop hands the lease back
        assert '"scheduler_leader_elected"' in standby.text()
        assert '"scheduler_standby"' in standby.text()
    finally:
        for scheduler in pair:
            if scheduler.process.poll() is None:
                scheduler.process.kill()
                scheduler.process.wait(timeout=30)


async def test_a_leader_whose_lease_was_taken_pauses_its_jobs_and_the_taker_runs_them(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], make_scheduler_on
) -> None:
    """In one process: the lease of a leader that stalls longer than the TTL is taken by the
    standby; when the former leader wakes up, it finds the lease gone and pauses its jobs."""
    short = settings.model_copy(update={"scheduler_leader_ttl_seconds": TTL})
    first = make_scheduler_on(short, session_factory)
    second = make_scheduler_on(short.model_copy(update={"topic_prefix": "second"}), session_factory)
    await first.start()
    await second.start()
    try:
        assert first.leading
        assert not second.leading
        assert first.scheduler.state == STATE_RUNNING
        assert not second.scheduler.running  # a standby never started its jobs
        stalled = first.leader._task  # the leader stalls: no beat for longer than the TTL
        assert stalled is not None
        stalled.cancel()

        async def taken() -> bool:
            return second.leading

        assert await eventually(taken, within=4 * TTL)
        assert first.leading  # it does not know yet
        first.leader._task = asyncio.create_task(first.leader._beat())  # it wakes up

        async def swapped() -> bool:
            return second.leading and not first.leading

        assert await eventually(swapped, within=4 * TTL)
        assert first.scheduler.state == STATE_PAUSED
        assert second.scheduler.state == STATE_RUNNING
        assert {job.id for job in second.scheduler.get_jobs()} >= {PIPELINE, STATE}
        lease = await _lease(session_factory)
        assert lease is not None
        assert lease.run_id == second.leader.token
    finally:
        await second.shutdown()
        await first.shutdown()
    assert await _lease(session_factory) is None
