"""`itff report weekly` and the scheduler's `weekly-report` job: each champion's live metrics over
the 7 and 30 days before the end of an ISO week, against the backtest stored with it, and the
drift rule's verdict (`bot.core.weekly_report`)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import BadInput, Settings, utcnow
from bot.core import LIVE_COLUMNS, live_metrics, weekly_markdown, weekly_paths, weekly_rows
from bot.runtime import get_logger
from storage import model_versions as model_repo
from storage.signals import resolved_signals

log = get_logger(__name__)
WINDOWS = (("7d", timedelta(days=7)), ("30d", timedelta(days=30)))
LONGEST = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class WeeklyReport:
    week: str
    markdown: Path
    rows: list[dict[str, Any]]


def previous_week(now: datetime | None = None) -> str:
    """The last complete ISO week (Monday to Sunday, UTC), as `YYYY-Www`."""
    year, week, _ = ((now or utcnow()).date() - timedelta(days=7)).isocalendar()
    return f"{year}-W{week:02d}"


def week_end(week: str) -> datetime:
    """Midnight UTC after the Sunday of `YYYY-Www`."""
    try:
        monday = date.fromisocalendar(int(week[:4]), int(week.split("-W")[1]), 1)
    except (ValueError, IndexError) as exc:
        raise BadInput(f"--week must be an ISO week like 2026-W49, got {week!r}") from exc
    return datetime.combine(monday + timedelta(days=7), time(), tzinfo=UTC)


async def weekly_report(
    settings: Settings,
    *,
    session_factory: async_sessionmaker[AsyncSession],
    week: str,
    now: datetime | None = None,
) -> WeeklyReport:
    """Write the report of `week` (an ISO week that is over) under `ITFF_REPORT_DIR/live/weekly`."""
    end = week_end(week)
    if end > (now or utcnow()):
        raise BadInput(f"{week} is not over yet (UTC); e.g. --week {previous_week(now)}")
    async with session_factory() as session:
        resolved = await resolved_signals(session=session, since=end - LONGEST)
        champions = await model_repo.list_versions(session=session, status=model_repo.CHAMPION)
    inside = [row for row in resolved if row.bar_time < end]
    frame = pd.DataFrame(
        [[getattr(row, name) for name in LIVE_COLUMNS] for row in inside], columns=LIVE_COLUMNS
    )
    live = await asyncio.to_thread(
        live_metrics, frame, now=end, cost_bps=settings.cost_bps, windows=WINDOWS
    )
    backtest = {row.model_key: dict(row.metrics) for row in champions}
    rows = weekly_rows(live, backtest, margin=settings.drift_margin)
    markdown, document = weekly_paths(settings.report_dir, week)
    markdown.parent.mkdir(parents=True, exist_ok=True)
    document.write_text(json.dumps({"week": week, "rows": rows}, indent=2) + "\n")
    markdown.write_text(weekly_markdown(week, rows, settings.drift_margin))
    log.info("weekly_report_written", week=week, path=str(markdown), rows=len(rows))
    return WeeklyReport(week, markdown, rows)
