from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from bot.artifacts import ArtifactRegistry
from bot.pipeline import RetentionPolicy, apply_retention, expired_logs, log_date
from bot.pipeline.retention import report_end
from storage import model_versions as model_repo
from storage.tables import Bar, LiveMetricSnapshot, Outcome, SignalRow
from tests.support.pipeline import small_bundle
from tests.support.postgres import both_stores

pytestmark = both_stores

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
POLICY = RetentionPolicy(signals_days=30, outcomes_days=10, logs_days=7, keep_versions=2)


def _signal(signal_id: str, emitted: datetime) -> SignalRow:
    return SignalRow(
        signal_id=signal_id, alert_id=f"alert-{signal_id}", symbol="SPX", interval="1D",
        bar_time=emitted, model_key="SPX-direction-logreg", model_version="v1",
        target="direction", prediction=0.6, probability=0.6, action="buy", ood=False,
        latency_ms=3.0, emitted_at=emitted, horizon=1,
    )  # fmt: skip


def _outcome(signal_id: str, resolved: datetime) -> Outcome:
    return Outcome(
        signal_id=signal_id, model_key="SPX-direction-logreg", bar_time=resolved,
        exit_time=resolved, realised_return=0.01, hit=True, strategy_return=0.01,
        resolved_at=resolved,
    )  # fmt: skip


async def _count(session_factory, table) -> int:
    async with session_factory() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


async def test_retention_prunes_old_rows_logs_and_versions_but_keeps_bars(
    settings, session_factory
) -> None:
    old, recent = NOW - timedelta(days=40), NOW - timedelta(days=5)
    async with session_factory() as session:
        session.add_all([_signal("old", old), _signal("mid", NOW - timedelta(days=20))])
        session.add(_signal("new", recent))
        await session.flush()
        session.add_all([_outcome("old", old), _outcome("mid", NOW - timedelta(days=15))])
        session.add(_outcome("new", recent))
        session.add(LiveMetricSnapshot(model_key="k", window="7d", computed_at=old, metrics={}))
        session.add(
            Bar(symbol="SPX", interval="1D", time=old, open=1, high=1, low=1, close=1, volume=0)
        )
        await session.commit()

    log_dir = settings.log_dir
    log_dir.mkdir(parents=True)
    (log_dir / "pipeline_20260520.log").write_text("old\n")
    (log_dir / "pipeline_20260530.log").write_text("recent\n")
    undated = log_dir / "scheduler.log"
    undated.write_text("old by mtime\n")
    stamp = (NOW - timedelta(days=30)).timestamp()
    os.utime(undated, (stamp, stamp))

    registry = ArtifactRegistry(settings.artifact_dir)
    key = "SPX-direction-logreg"
    for index in range(1, 6):
        published = registry.publish(small_bundle(f"v{index}"))
        async with session_factory() as session:
            await model_repo.add_version(
                session=session, key=key, version=published.version, symbol="SPX",
                target="direction", model_type="logreg", sha256=published.sha256, metrics={},
                train_start=None, train_end=None, run_id=None,
            )  # fmt: skip
            await session.commit()
    registry.promote(key, "v1")
    registry.promote(key, "v2")  # champion v2, rollback target v1

    report = await apply_retention(
        policy=POLICY, session_factory=session_factory, registry=registry,
        log_dir=log_dir, now=NOW,
    )  # fmt: skip

    assert report.signals == 1  # "old": older than 30 days
    assert report.outcomes == 2  # resolved 40 and 15 days ago, older than 10 days
    assert report.live_metrics == 1
    assert sorted(report.logs) == ["pipeline_20260520.log", "scheduler.log"]
    assert (log_dir / "pipeline_20260530.log").exists()
    assert sorted(report.artifacts) == [f"{key}/v3"]  # keeps the 2 newest + champion + target
    assert [v.version for v in registry.versions(key)] == ["v1", "v2", "v4", "v5"]
    assert await _count(session_factory, SignalRow) == 2
    assert await _count(session_factory, Outcome) == 1
    assert await _count(session_factory, Bar) == 1
    async with session_factory() as session:
        pruned = await model_repo.list_versions(session=session, key=key, status="pruned")
    assert [row.version for row in pruned] == ["v3"]


def test_log_dates_come_from_the_name_or_the_mtime(tmp_path) -> None:
    named = tmp_path / "pipeline_20260101.log"
    named.write_text("x")
    assert log_date(named) == datetime(2026, 1, 1, tzinfo=UTC)
    assert expired_logs(tmp_path, older_than=datetime(2026, 1, 2, tzinfo=UTC)) == [named]
    assert expired_logs(tmp_path, older_than=datetime(2026, 1, 1, 23, tzinfo=UTC)) == []
    assert expired_logs(tmp_path / "missing", older_than=NOW) == []


async def test_reports_past_their_period_go_and_the_notes_stay(
    settings, session_factory, tmp_path: Path
) -> None:
    live = tmp_path / "reports" / "live"
    names = {
        "daily": ["2026-05-01.md", "2026-05-01.json", "2026-05-30.md", "README.md"],
        "weekly": ["2026-W17.md", "2026-W17", "2026-W22.md"],
        "review": ["2026-03-01_2026-04-01.md", "2026-04-30_2026-05-30.md"],
        "dashboards": ["2026-05-01.png"],
        "tradingview": ["2026-05-01.jsonl", "2026-05-31.jsonl"],
    }
    for kind, files in names.items():
        (live / kind).mkdir(parents=True)
        for name in files:
            path = live / kind / name
            if "." in name:
                path.write_text("x")
            else:  # the weekly report's chart folder
                path.mkdir()
                (path / "SPX-direction-logreg.png").write_bytes(b"png")
    (live / "daily_notes.md").write_text("# operator notes, 2020-01-01\n")

    report = await apply_retention(
        policy=replace(POLICY, reports_days=20), session_factory=session_factory,
        registry=ArtifactRegistry(settings.artifact_dir), log_dir=tmp_path / "logs", now=NOW,
        report_dir=tmp_path / "reports",
    )  # fmt: skip

    assert sorted(report.reports) == [
        "live/daily/2026-05-01.json",
        "live/daily/2026-05-01.md",
        "live/dashboards/2026-05-01.png",
        "live/review/2026-03-01_2026-04-01.md",
        "live/tradingview/2026-05-01.jsonl",
        "live/weekly/2026-W17",
        "live/weekly/2026-W17.md",
    ]
    assert report.counts()["reports"] == 7
    kept = sorted(p.relative_to(live).as_posix() for p in live.rglob("*") if p.is_file())
    assert kept == [
        "daily/2026-05-30.md",
        "daily/README.md",
        "daily_notes.md",
        "review/2026-04-30_2026-05-30.md",
        "tradingview/2026-05-31.jsonl",
        "weekly/2026-W22.md",
    ]


def test_a_report_period_is_read_from_its_name() -> None:
    assert report_end(Path("2026-05-01.md")) == datetime(2026, 5, 2, tzinfo=UTC)
    assert report_end(Path("2026-W17.md")) == datetime(2026, 4, 27, tzinfo=UTC)
    assert report_end(Path("2026-03-01_2026-04-01.md")) == datetime(2026, 4, 2, tzinfo=UTC)
    assert report_end(Path("2026-13-45.md")) is None
    assert report_end(Path("notes.md")) is None
