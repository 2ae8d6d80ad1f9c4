"""The retention policy, applied daily by the scheduler's retention job.

* the running live-metric aggregates first count every stored outcome, so that the live metrics
  (all-time figures included) keep what the deleted rows contributed;
* outcomes resolved more than `ITFF_RETENTION_OUTCOMES_DAYS` ago are archived, then deleted;
* signals older than `ITFF_RETENTION_SIGNALS_DAYS` (with their outcomes) are archived, then
  deleted, and live-metric snapshots of the same age are deleted;
* archived means written to Parquet per month under `ITFF_ARCHIVE_DIR` (`bot.pipeline.archive`,
  read by `itff report archive`); with `ITFF_RETENTION_ARCHIVE=false` the rows are only deleted;
* log files in `ITFF_LOG_DIR` older than `ITFF_RETENTION_LOGS_DAYS` are deleted (the date in a
  `pipeline_YYYYMMDD.log` name, the modification time otherwise);
* artifact versions beyond the newest `ITFF_ARTIFACT_KEEP_VERSIONS` of each key are deleted, never
  the champion nor its rollback target; their `model_versions` rows stay, marked `pruned`;
* live-validation reports under `ITFF_REPORT_DIR/live` (daily, weekly with its charts, review,
  dashboard snapshots, TradingView audit logs) whose period ended more than
  `ITFF_RETENTION_REPORTS_DAYS` ago are deleted (the period is read from the name); the operator's
  `daily_notes.md` is kept;
* bars are kept: they are the training history.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.artifacts import ArtifactRegistry
from bot.contracts import Settings
from bot.pipeline import archive
from bot.pipeline.snapshots import fold_new_outcomes
from storage import model_versions as model_repo
from storage import retention as retention_repo

CHUNK = 50_000  # expired rows archived and deleted per transaction
DATED_LOG = re.compile(r"_(\d{8})\.log$")
REPORT_DAY = re.compile(r"(\d{4}-\d{2}-\d{2})(?!.*\d{4}-\d{2}-\d{2})")  # the last day named
REPORT_WEEK = re.compile(r"^(\d{4})-W(\d{2})")
REPORT_KINDS = ("daily", "weekly", "review", "dashboards", "tradingview")


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    signals_days: int
    outcomes_days: int
    logs_days: int
    keep_versions: int
    archive_dir: Path | None = None  # None: expired signals and outcomes are only deleted
    cost_bps: float = 1.0  # of the live aggregates brought up to date first
    reports_days: int = 365

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(
            signals_days=settings.retention_signals_days,
            outcomes_days=settings.retention_outcomes_days,
            logs_days=settings.retention_logs_days,
            keep_versions=settings.artifact_keep_versions,
            archive_dir=settings.archive_dir if settings.retention_archive else None,
            cost_bps=settings.cost_bps,
            reports_days=settings.retention_reports_days,
        )


@dataclass
class RetentionReport:
    signals: int = 0
    outcomes: int = 0
    live_metrics: int = 0
    archived: list[str] = field(default_factory=list)  # Parquet files written
    logs: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "signals": self.signals,
            "outcomes": self.outcomes,
            "live_metrics": self.live_metrics,
            "logs": len(self.logs),
            "artifacts": len(self.artifacts),
            "reports": len(self.reports),
        }


def log_date(path: Path) -> datetime:
    """The day a log file belongs to: from a `_YYYYMMDD.log` name, else its modification time."""
    match = DATED_LOG.search(path.name)
    if match:
        try:
            return datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def expired_logs(log_dir: Path, *, older_than: datetime) -> list[Path]:
    """Log files (`*.log`, rotated `*.log.N`) in `log_dir` whose day ends before `older_than`."""
    if not log_dir.is_dir():
        return []
    candidates = [p for p in log_dir.iterdir() if p.is_file() and ".log" in p.name]
    return sorted(p for p in candidates if log_date(p) + timedelta(days=1) <= older_than)


def report_end(path: Path) -> datetime | None:
    """Midnight UTC after the period a report file or folder covers, from its name (`YYYY-MM-DD`:
    that day; `YYYY-Www`: that ISO week; `SINCE_UNTIL`: up to UNTIL); None when it names none."""
    week = REPORT_WEEK.match(path.name)
    day = REPORT_DAY.search(path.name)
    try:
        if week:
            end = date.fromisocalendar(int(week.group(1)), int(week.group(2)), 1) + timedelta(7)
        elif day:
            end = date.fromisoformat(day.group(1)) + timedelta(days=1)
        else:
            return None
    except ValueError:
        return None
    return datetime.combine(end, time(), tzinfo=UTC)


def expired_reports(report_dir: Path, *, older_than: datetime) -> list[Path]:
    """Report files and chart folders under `report_dir/live/<kind>` whose period ended before
    `older_than`; files that name no period, and `daily_notes.md`, are never listed."""
    found = []
    for kind in REPORT_KINDS:
        folder = report_dir / "live" / kind
        if folder.is_dir():
            for path in folder.iterdir():
                end = report_end(path)
                if end is not None and end <= older_than:
                    found.append(path)
    return sorted(found)


async def apply_retention(
    *,
    policy: RetentionPolicy,
    session_factory: async_sessionmaker[AsyncSession],
    registry: ArtifactRegistry,
    log_dir: Path,
    now: datetime,
    report_dir: Path | None = None,
) -> RetentionReport:
    """Apply `policy` as of `now`; returns what was removed."""
    report = RetentionReport()
    await fold_new_outcomes(session_factory=session_factory, cost_bps=policy.cost_bps)
    stamp = now.strftime("%Y%m%dT%H%M%S")
    report.outcomes = await _expire(
        session_factory, policy, archive.OUTCOMES, now - timedelta(days=policy.outcomes_days), stamp
    )
    signals_cut = now - timedelta(days=policy.signals_days)
    report.signals = await _expire(session_factory, policy, archive.SIGNALS, signals_cut, stamp)
    report.archived = sorted(
        str(path.relative_to(policy.archive_dir))
        for kind in archive.KINDS
        if policy.archive_dir is not None
        for path in (policy.archive_dir / kind).glob(f"*/{stamp}*.parquet")
    )
    async with session_factory() as session:
        report.live_metrics = await retention_repo.delete_live_metrics_before(
            session=session, before=signals_cut
        )
        await session.commit()
    report.logs = await asyncio.to_thread(
        _delete_logs, log_dir, now - timedelta(days=policy.logs_days)
    )
    if report_dir is not None:
        report.reports = await asyncio.to_thread(
            _delete_reports, report_dir, now - timedelta(days=policy.reports_days)
        )
    report.artifacts = await asyncio.to_thread(registry.prune, policy.keep_versions)
    await _mark_pruned(session_factory, report.artifacts)
    return report


async def _expire(
    session_factory: async_sessionmaker[AsyncSession],
    policy: RetentionPolicy,
    kind: str,
    before: datetime,
    stamp: str,
) -> int:
    """Archive (when the policy says so), then delete the expired rows of `kind`, `CHUNK` at a
    time; returns the rows deleted."""
    expired = {
        archive.SIGNALS: retention_repo.expired_signals,
        archive.OUTCOMES: retention_repo.expired_outcomes,
    }[kind]
    delete = {
        archive.SIGNALS: retention_repo.delete_signals,
        archive.OUTCOMES: retention_repo.delete_outcomes,
    }[kind]
    deleted, part = 0, 0
    while True:
        async with session_factory() as session, session.begin():
            rows = await expired(session=session, before=before, limit=CHUNK)
            if not rows:
                return deleted
            if policy.archive_dir is not None:
                frame = pd.DataFrame(rows)
                await asyncio.to_thread(
                    archive.write, policy.archive_dir, kind, frame, stamp=f"{stamp}-{part:04d}"
                )
            ids = [str(row["signal_id"]) for row in rows]
            deleted += await delete(session=session, signal_ids=ids)
        part += 1


def _delete_logs(log_dir: Path, older_than: datetime) -> list[str]:
    removed = []
    for path in expired_logs(log_dir, older_than=older_than):
        path.unlink(missing_ok=True)
        removed.append(path.name)
    return removed


def _delete_reports(report_dir: Path, older_than: datetime) -> list[str]:
    removed = []
    for path in expired_reports(report_dir, older_than=older_than):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path.relative_to(report_dir).as_posix())
    return removed


async def _mark_pruned(
    session_factory: async_sessionmaker[AsyncSession], removed: list[str]
) -> None:
    by_key: dict[str, list[str]] = defaultdict(list)
    for item in removed:
        key, _, version = item.rpartition("/")
        by_key[key].append(version)
    async with session_factory() as session:
        for key, versions in by_key.items():
            await model_repo.mark_pruned(session=session, key=key, versions=versions)
        await session.commit()
