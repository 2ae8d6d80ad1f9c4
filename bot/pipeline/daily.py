"""`itff report daily` and the scheduler's `daily-report` job: one UTC day of the live validation.

Reads the receiver's audit file, the day's signals (storage), the dead-letter topic, pipeline runs
and champion changes; writes the completed audit file (atomically, in place), the summary as
Markdown and JSON, the dashboard snapshot when a renderer is given, and appends the anomalies to
`daily_notes.md` (append only: an operator's own notes there are never touched).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import perf_counter
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.artifacts import ArtifactRegistry
from bot.contracts import BadInput, Settings, TransientError, utcnow
from bot.core import (
    DayFacts,
    audit_path,
    complete_audit,
    daily_anomalies,
    daily_markdown,
    daily_paths,
    daily_summary,
    notes_path,
)
from bot.kafka import read_dead_letters
from bot.pipeline.parity import parity_report
from bot.runtime import get_logger
from storage import model_versions as model_repo
from storage import runs as run_repo
from storage.signals import signals_for_alerts

log = get_logger(__name__)

Snapshot = Callable[[Path], object]  # renders the dashboard snapshot of a day to a PNG path
RUNS_LOOKED_AT = 200
EVENTS_LOOKED_AT = 1000


@dataclass(frozen=True, slots=True)
class DailyReport:
    day: date
    markdown: Path
    summary: dict[str, Any]
    anomalies: list[str]


def previous_day(now: datetime | None = None) -> date:
    """The last complete UTC day, the default of `itff report daily`."""
    return (now or utcnow()).date() - timedelta(days=1)


async def daily_report(
    settings: Settings,
    *,
    session_factory: async_sessionmaker[AsyncSession],
    day: date,
    snapshot: Snapshot | None = None,
    registry: ArtifactRegistry | None = None,
    now: datetime | None = None,
) -> DailyReport:
    """Write the report of `day` (a UTC day that is over) and return what it found; with a
    registry, the signals resolved that day are checked for live/backtest parity."""
    started = perf_counter()
    if day >= (now or utcnow()).date():
        raise BadInput(
            f"{day} is not over yet (UTC): the daily report is of a finished day, e.g. "
            f"--day {previous_day(now)}"
        )
    audit = await asyncio.to_thread(_read_lines, audit_path(settings.report_dir, day))
    facts = await _gather(settings, session_factory, day, audit)
    if registry is not None:
        start = datetime.combine(day, time(), tzinfo=UTC)
        parity = await parity_report(
            session_factory=session_factory,
            registry=registry,
            resolved=(start, start + timedelta(days=1)),
        )
        found = [result.to_dict() for result in parity.mismatches]
        facts = replace(facts, parity=found, parity_checked=parity.checked)
    completed = complete_audit(facts)
    summary = daily_summary(facts, completed)
    anomalies = daily_anomalies(summary)
    if snapshot is not None:
        anomalies.extend(await _snapshot(snapshot, settings.report_dir, day))
    summary["anomalies"] = anomalies
    markdown = await asyncio.to_thread(_write, settings.report_dir, day, completed, summary)
    log.info(
        "daily_report_written",
        day=str(day),
        path=str(markdown),
        anomalies=len(anomalies),
        parity_checked=facts.parity_checked,
        seconds=round(perf_counter() - started, 3),
    )
    return DailyReport(day, markdown, summary, anomalies)


async def _gather(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    day: date,
    audit: list[dict[str, Any]],
) -> DayFacts:
    alert_ids = [line["alert_id"] for line in audit if line.get("alert_id")]
    async with session_factory() as session:
        signals = await signals_for_alerts(session=session, alert_ids=alert_ids)
        runs = await run_repo.list_runs(session=session, limit=RUNS_LOOKED_AT)
        events = await model_repo.list_events(session=session, limit=EVENTS_LOOKED_AT)
    return DayFacts(
        day=str(day),
        audit=audit,
        signals=[s.model_dump(mode="json") for s in signals],
        dead_letters=await _dead_letters(settings),
        runs=[
            {"run_id": r.run_id, "trigger": r.trigger, "status": r.status, "error": r.error}
            for r in reversed(runs)
            if r.started_at.date() == day
        ],
        promotions=[
            {"model_key": e.model_key, "event": e.event, "version": e.version, "at": str(e.at)}
            for e in reversed(events)
            if e.at.date() == day
        ],
    )


async def _dead_letters(settings: Settings) -> dict[str, str] | None:
    """Alert id -> reason of every dead letter holding an alert; None when Kafka is unreachable."""
    try:
        letters = await read_dead_letters(settings)
    except TransientError as exc:
        log.warning("daily_report_without_dead_letters", error=str(exc))
        return None
    return {s.alert.alert_id: s.letter.reason for s in letters.letters if s.alert is not None}


async def _snapshot(render: Snapshot, report_dir: Path, day: date) -> list[str]:
    target = report_dir / "live" / "dashboards" / f"{day}.png"
    try:
        await asyncio.to_thread(render, target)
    except Exception as exc:  # a missing browser must not cost the report
        return [f"the dashboard snapshot failed: {type(exc).__name__}: {exc}"]
    return []


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path}:{number} is not a JSON line ({exc}); fix or remove it") from exc
    return lines


def _write(
    report_dir: Path, day: date, completed: list[dict[str, Any]], summary: dict[str, Any]
) -> Path:
    if completed:
        _replace(audit_path(report_dir, day), "".join(json.dumps(x) + "\n" for x in completed))
    markdown, document = daily_paths(report_dir, day)
    _replace(document, json.dumps(summary, indent=2, default=str) + "\n")
    _replace(markdown, daily_markdown(summary, summary["anomalies"]))
    _append_notes(notes_path(report_dir), day, summary["anomalies"])
    return markdown


def _replace(path: Path, text: str) -> None:
    """Write beside, then rename: a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def _append_notes(path: Path, day: date, anomalies: list[str]) -> None:
    """Append the day's anomalies once (a rerun of the same day adds nothing)."""
    heading = f"## {day} (itff report daily)"
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    if heading in existing:
        return
    body = "\n".join(f"- {a}" for a in anomalies) if anomalies else "- no anomaly"
    separator = (
        ""
        if not existing or existing.endswith("\n\n")
        else "\n"
        if existing.endswith("\n")
        else "\n\n"
    )
    with path.open("a", encoding="utf-8") as file:
        file.write(f"{separator}{heading}\n\n{body}\n")
