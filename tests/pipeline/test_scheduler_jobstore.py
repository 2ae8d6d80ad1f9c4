"""Jobs stored by the scheduler before the layout of issue 13 keep working after it.

`data/jobs-before-issue-13.sqlite` was written by the scheduler of commit a48439b (functions under
`bot.scheduler`), with a pending `pipeline-retry` on 2030-01-02 03:04 UTC.
"""

from __future__ import annotations

import pickle
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from bot.pipeline import (
    DAILY,
    LIVE,
    PIPELINE,
    RETRY,
    STATE,
    VERIFY,
    WEEKLY,
    ItffScheduler,
    migrate_job_refs,
)
from bot.pipeline.scheduler import crontab_trigger
from storage.migrate import upgrade_async

OLD_STORE = Path(__file__).parent / "data" / "jobs-before-issue-13.sqlite"
RETENTION = "retention"


def _stored_refs(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as db:
        rows = db.execute("select id, job_state from apscheduler_jobs").fetchall()
    return {job_id: pickle.loads(state)["func"] for job_id, state in rows}


def _old_store(settings, tmp_path: Path) -> tuple[Path, object]:
    path = tmp_path / "old.db"
    shutil.copy(OLD_STORE, path)
    return path, settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{path}"})


def test_the_fixture_is_a_store_of_the_old_layout(tmp_path) -> None:
    refs = _stored_refs(OLD_STORE)
    assert set(refs) == {PIPELINE, RETRY, VERIFY, RETENTION, LIVE}
    assert all(ref.startswith("bot.scheduler:") for ref in refs.values())


def test_migration_rewrites_moved_references_once(settings, tmp_path) -> None:
    path, _ = _old_store(settings, tmp_path)
    url = f"sqlite:///{path}"
    assert migrate_job_refs(url) == 5
    refs = _stored_refs(path)
    assert refs[RETRY] == refs[PIPELINE] == "bot.pipeline.scheduler:pipeline_job"
    assert refs[LIVE] == "bot.pipeline.scheduler:live_metrics_job"
    assert migrate_job_refs(url) == 0  # idempotent
    assert migrate_job_refs(f"sqlite:///{tmp_path / 'empty.db'}") == 0  # no job table yet


async def test_the_scheduler_starts_on_an_old_store_and_keeps_every_job(
    settings, tmp_path, make_scheduler_on
) -> None:
    _path, configured = _old_store(settings, tmp_path)
    await upgrade_async(configured.database_url)
    from storage.db import create_engine, create_session_factory

    engine = create_engine(configured.database_url)
    scheduler: ItffScheduler = make_scheduler_on(configured, create_session_factory(engine))
    await scheduler.start()
    try:
        jobs = {job.id: job for job in scheduler.scheduler.get_jobs()}
        added = {STATE, DAILY, WEEKLY}
        assert set(jobs) == {PIPELINE, RETRY, VERIFY, RETENTION, LIVE, *added}
        assert jobs[DAILY].func_ref == "bot.pipeline.scheduler:daily_report_job"
        assert str(jobs[DAILY].trigger) == str(crontab_trigger(configured.daily_report_cron))
        assert jobs[WEEKLY].func_ref == "bot.pipeline.scheduler:weekly_report_job"
        assert str(jobs[WEEKLY].trigger) == str(crontab_trigger(configured.weekly_report_cron))
        retry = jobs[RETRY]
        assert retry.next_run_time == datetime(2030, 1, 2, 3, 4, tzinfo=UTC)  # still pending
        assert list(retry.args[1:]) == [2]  # its attempt number survived
        assert all(job.func_ref.startswith("bot.pipeline.scheduler:") for job in jobs.values())
    finally:
        await scheduler.shutdown()
        await engine.dispose()
