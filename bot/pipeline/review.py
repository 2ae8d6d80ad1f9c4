"""`itff report review --since D`: the 30-day review of the live validation (`bot.core.review`),
from the resolved signals, the champions, the model events and the daily and weekly reports on
file under `ITFF_REPORT_DIR/live`."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import BadInput, Settings, utcnow
from bot.core import (
    LIVE_COLUMNS,
    compared,
    daily_paths,
    latency_percentiles,
    live_metrics,
    recommend,
    review_markdown,
    weekly_paths,
)
from bot.pipeline.same_period import resolved_frame, same_period_metrics
from bot.pipeline.weekly import week_end
from bot.runtime import get_logger
from storage import model_versions as model_repo
from storage.signals import signal_latencies

if TYPE_CHECKING:
    from bot.artifacts import ArtifactRegistry

log = get_logger(__name__)
EVENTS_LOOKED_AT = 1000


@dataclass(frozen=True, slots=True)
class ReviewReport:
    markdown: Path
    rows: list[dict[str, Any]]


async def review_report(
    settings: Settings,
    *,
    session_factory: async_sessionmaker[AsyncSession],
    since: date,
    until: date | None = None,
    registry: ArtifactRegistry | None = None,
) -> ReviewReport:
    """Review [since, until) (until: today UTC) and write `live/review/SINCE_UNTIL.md|json`.

    With `registry`, each champion is judged as the weekly verdict judges it
    (`bot.core.drift_rule.compared`): against the batch path over exactly its live bars once they
    are enough, against the stored backtest otherwise; the row says which."""
    last = until or utcnow().date()
    if last <= since:
        raise BadInput(f"--since {since} must be before {last}")
    start = datetime.combine(since, time(), tzinfo=UTC)
    end = datetime.combine(last, time(), tzinfo=UTC)
    frame = await resolved_frame(session_factory, since=start, until=end)
    async with session_factory() as session:
        latencies = await signal_latencies(session=session, since=start, until=end)
        champions = await model_repo.list_versions(session=session, status=model_repo.CHAMPION)
        events = await model_repo.list_events(session=session, limit=EVENTS_LOOKED_AT)
    live = await asyncio.to_thread(
        live_metrics, frame.loc[:, list(LIVE_COLUMNS)], now=end, cost_bps=settings.cost_bps,
        windows=(("period", None),),
    )  # fmt: skip
    same = None
    if registry is not None:
        same = await same_period_metrics(
            settings, session_factory, registry, champions=champions, frame=frame, now=end,
            windows=(("period", end - start),),
        )  # fmt: skip
    promoted = {e.model_key for e in events if e.event == "promoted" and start <= e.at < end}
    daily = _daily_summaries(settings.report_dir, since, last)
    rows = []
    for champion in champions:
        key = champion.model_key
        metrics = live.get((key, "period"), {})
        backtest = dict(champion.metrics)
        same_period = (same or {}).get((key, "period"))
        comparison = compared(metrics, backtest, same_period)
        recommendation, evidence = recommend(
            comparison.judged, comparison.reference, margin=settings.drift_margin,
            promoted_in_period=key in promoted,
        )  # fmt: skip
        rows.append(
            {
                "model_key": key,
                "version": champion.version,
                "signals": int(metrics.get("signal_count") or 0),
                "live": metrics,
                "backtest": backtest,
                "live_period": (same_period or {}).get("batch") or {},
                "compared_with": comparison.name,
                "compared_bars": comparison.bars,
                "latency_ms": latency_percentiles([ms for k, ms in latencies if k == key]),
                "incidents": _incidents(daily, key),
                "verdicts": _verdicts(settings.report_dir, key, start, end),
                "recommendation": recommendation,
                "evidence": evidence,
            }
        )
    return await asyncio.to_thread(_write, settings.report_dir, since, last, rows)


def _daily_summaries(report_dir: Path, since: date, until: date) -> list[dict[str, Any]]:
    found = []
    day = since
    while day < until:
        _, document = daily_paths(report_dir, day)
        if document.exists():
            found.append(json.loads(document.read_text(encoding="utf-8")))
        day += timedelta(days=1)
    return found


def _incidents(daily: list[dict[str, Any]], key: str) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for summary in daily:
        counts["dead letters"] += sum((summary.get("dead_letters_by_reason") or {}).values())
        counts["failed pipeline runs"] += sum(
            run["status"] == "failed" for run in summary.get("pipeline_runs", [])
        )
        counts["parity mismatches"] += sum(
            p["model_key"] == key for p in summary.get("parity_mismatches", [])
        )
        counts["days with anomalies"] += bool(summary.get("anomalies"))
    counts["daily reports on file"] = len(daily)
    return dict(counts)


def _verdicts(report_dir: Path, key: str, start: datetime, end: datetime) -> list[str]:
    """The 30-day verdicts of `key` in the weekly reports of weeks ending inside the period."""
    folder = weekly_paths(report_dir, "x")[1].parent
    verdicts = []
    for path in sorted(folder.glob("*-W*.json")) if folder.exists() else []:
        week = path.stem
        if not start < week_end(week) <= end:
            continue
        rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
        verdicts += [
            f"{week} {r['verdict']}" for r in rows if r["model_key"] == key and r["window"] == "30d"
        ]
    return verdicts


def _write(report_dir: Path, since: date, until: date, rows: list[dict[str, Any]]) -> ReviewReport:
    folder = report_dir / "live" / "review"
    folder.mkdir(parents=True, exist_ok=True)
    markdown = folder / f"{since}_{until}.md"
    document = {"since": str(since), "until": str(until), "champions": rows}
    markdown.with_suffix(".json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    markdown.write_text(review_markdown(str(since), str(until), rows))
    log.info("review_written", path=str(markdown), champions=len(rows))
    return ReviewReport(markdown, rows)
