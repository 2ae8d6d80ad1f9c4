"""`itff report daily`: the receiver's audit file completed with what became of each alert, the
summary and the anomalies, from the real receiver, real SQLite and the real dead-letter topic."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import DeadLetter, Settings, Signal
from bot.core import audit_path, daily_paths, notes_path
from bot.pipeline import daily_report, daily_report_job
from storage import runs as run_repo
from storage.signals import insert_signals
from storage.tables import OutboxEntry
from tests.pipeline.conftest import MakeScheduler
from tests.support.cli import run_itff
from tests.support.consumer import produce
from tests.support.env import child_env
from tests.support.webhook import MakeReceiver, tv_message

TV = "/webhook/tradingview"
OPERATOR_NOTE = "# Validation log\n\n2026-11-30: TradingView outage 14:00-14:20, by hand.\n"


def _signal(alert_id: str, model: str, *, action: str, ood: bool, latency: float) -> Signal:
    return Signal(
        alert_id=alert_id,
        symbol="SPX",
        interval="1D",
        bar_time=datetime(2026, 11, 27, tzinfo=UTC),
        model_key=f"SPX-direction-{model}",
        model_version="v1",
        target="direction",
        prediction=1.0,
        probability=0.6,
        action=action,
        ood=ood,
        latency_ms=latency,
    )


async def _post_alerts(receiver: MakeReceiver) -> list[str]:
    client = await receiver()
    ids = []
    for day in (24, 25, 26):
        response = await client.post(TV, json=tv_message(time=f"2026-11-{day}T00:00:00Z"))
        assert response.status == 202
        ids.append((await response.json())["alert_id"])
    assert (await client.post(TV, json=tv_message(passphrase="wrong-one-here"))).status == 401
    await client.close()  # the audit writer has written every line
    return ids


async def _failed_run(session_factory: async_sessionmaker[AsyncSession]) -> None:
    async with session_factory() as session, session.begin():
        await run_repo.start_run(session=session, run_id="run-1", trigger="schedule", log_path=None)
    async with session_factory() as session, session.begin():
        await run_repo.finish_run(
            session=session, run_id="run-1", status=run_repo.FAILED, counts={}, decisions={},
            metrics={}, anomalies={}, error="data source unreachable",
        )  # fmt: skip


@pytest.mark.kafka
async def test_daily_report_joins_signals_and_dead_letters_and_keeps_operator_notes(
    receiver: MakeReceiver,
    kafka_settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    first, second, third = await _post_alerts(receiver)
    async with session_factory() as session, session.begin():
        await insert_signals(
            session=session,
            signals=[
                _signal(first, "logreg", action="buy", ood=False, latency=40.0),
                _signal(first, "hgb", action="hold", ood=True, latency=60.0),
            ],
            horizons={},
        )
    await _failed_run(session_factory)
    async with session_factory() as session:  # the alert as the receiver queued it
        original = await session.scalar(select(OutboxEntry.payload).filter_by(alert_id=second))
    assert original is not None
    letter = DeadLetter(original=original, error="no champion", reason="no_model", stage="route")
    await produce(
        kafka_settings.bootstrap,
        kafka_settings.topics.dlq,
        [(None, letter.model_dump_json().encode())],
    )
    notes = notes_path(kafka_settings.report_dir)
    notes.write_text(OPERATOR_NOTE)
    today = datetime.now(UTC)
    rendered: list[Path] = []

    report = await daily_report(
        kafka_settings,
        session_factory=session_factory,
        day=today.date(),
        snapshot=rendered.append,
        now=today + timedelta(days=1),
    )

    audit = audit_path(kafka_settings.report_dir, today.date()).read_text()
    lines = [json.loads(x) for x in audit.splitlines()]
    assert [x["status"] for x in lines] == [202, 202, 202, 401]
    assert [(s["model_key"], s["action"]) for s in lines[0]["signals"]] == [
        ("SPX-direction-hgb", "hold"),
        ("SPX-direction-logreg", "buy"),
    ]
    assert lines[1]["signals"] == []
    assert lines[1]["dead_letter"] == "no_model"
    assert lines[2]["signals"] == []
    assert lines[2]["dead_letter"] is None
    summary = report.summary
    assert summary["alerts_accepted"] == 3
    assert summary["signals"] == 2
    assert summary["dead_letters_by_reason"] == {"no_model": 1}
    assert summary["alerts_without_outcome"] == [third]
    assert summary["ood_share"] == 0.5
    assert summary["latency_ms"]["p50"] == 50.0
    assert summary["requests_by_status"] == {"202": 3, "401": 1}
    assert [r["status"] for r in summary["pipeline_runs"]] == ["failed"]
    assert rendered == [kafka_settings.report_dir / "live" / "dashboards" / f"{today.date()}.png"]
    markdown, document = daily_paths(kafka_settings.report_dir, today.date())
    assert json.loads(document.read_text())["signals"] == 2
    assert "- signals: 2 (buy: 1, hold: 1)" in markdown.read_text()
    text = notes.read_text()
    assert text.startswith(OPERATOR_NOTE)
    assert f"1 accepted alert(s) have neither a signal nor a dead letter (first: {third})" in text
    assert "pipeline run run-1 failed: data source unreachable" in text
    assert "50% of the signals were out of distribution" in text

    again = await daily_report(
        kafka_settings, session_factory=session_factory, day=today.date(), now=today + timedelta(1)
    )
    assert again.summary["signals"] == 2  # the completed file is read again, not doubled
    assert notes.read_text() == text  # a rerun appends nothing twice


async def test_a_day_that_is_not_over_is_refused_with_what_to_run(settings: Settings) -> None:
    today = datetime.now(UTC).date()
    result = await asyncio.to_thread(
        run_itff, child_env(settings), "report", "daily", "--day", str(today), "--no-snapshot"
    )
    assert result.returncode == 1
    assert f"{today} is not over yet" in result.stderr + result.stdout
    assert f"--day {today - timedelta(days=1)}" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.kafka
async def test_the_scheduler_job_reports_the_previous_day(
    kafka_settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    make_scheduler_on: MakeScheduler,
) -> None:
    scheduler = make_scheduler_on(kafka_settings, session_factory)
    await scheduler.start()
    try:
        report = await daily_report_job(scheduler.runtime.name)
    finally:
        await scheduler.shutdown()
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    assert report.day == yesterday
    markdown, _ = daily_paths(kafka_settings.report_dir, yesterday)
    assert markdown.read_text().startswith(f"# Daily report {yesterday}")
    assert report.anomalies == ["no pipeline run started this day"]
