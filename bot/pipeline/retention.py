"""The retention policy, applied daily by the scheduler's retention job.

* signals older than `ITFF_RETENTION_SIGNALS_DAYS` (with their outcomes) and live-metric snapshots
  of the same age are deleted;
* outcomes resolved more than `ITFF_RETENTION_OUTCOMES_DAYS` ago are deleted;
* log files in `ITFF_LOG_DIR` older than `ITFF_RETENTION_LOGS_DAYS` are deleted (the date in a
  `pipeline_YYYYMMDD.log` name, the modification time otherwise);
* artifact versions beyond the newest `ITFF_ARTIFACT_KEEP_VERSIONS` of each key are deleted, never
  the champion nor its rollback target; their `model_versions` rows stay, marked `pruned`;
* bars are kept: they are the training history.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.artifacts import ArtifactRegistry
from bot.contracts import Settings
from storage import model_versions as model_repo
from storage import retention as retention_repo

DATED_LOG = re.compile(r"_(\d{8})\.log$")


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    signals_days: int
    outcomes_days: int
    logs_days: int
    keep_versions: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(
            signals_days=settings.retention_signals_days,
            outcomes_days=settings.retention_outcomes_days,
            logs_days=settings.retention_logs_days,
            keep_versions=settings.artifact_keep_versions,
        )


@dataclass
class RetentionReport:
    signals: int = 0
    outcomes: int = 0
    live_metrics: int = 0
    logs: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "signals": self.signals,
            "outcomes": self.outcomes,
            "live_metrics": self.live_metrics,
            "logs": len(self.logs),
            "artifacts": len(self.artifacts),
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


async def apply_retention(
    *,
    policy: RetentionPolicy,
    session_factory: async_sessionmaker[AsyncSession],
    registry: ArtifactRegistry,
    log_dir: Path,
    now: datetime,
) -> RetentionReport:
    """Apply `policy` as of `now`; returns what was removed."""
    report = RetentionReport()
    async with session_factory() as session:
        report.outcomes = await retention_repo.delete_outcomes_before(
            session=session, before=now - timedelta(days=policy.outcomes_days)
        )
        signals_cut = now - timedelta(days=policy.signals_days)
        report.signals = await retention_repo.delete_signals_before(
            session=session, before=signals_cut
        )
        report.live_metrics = await retention_repo.delete_live_metrics_before(
            session=session, before=signals_cut
        )
        await session.commit()
    report.logs = await asyncio.to_thread(
        _delete_logs, log_dir, now - timedelta(days=policy.logs_days)
    )
    report.artifacts = await asyncio.to_thread(registry.prune, policy.keep_versions)
    await _mark_pruned(session_factory, report.artifacts)
    return report


def _delete_logs(log_dir: Path, older_than: datetime) -> list[str]:
    removed = []
    for path in expired_logs(log_dir, older_than=older_than):
        path.unlink(missing_ok=True)
        removed.append(path.name)
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
