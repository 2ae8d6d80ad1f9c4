"""The daily report of the live validation: what became of every alert of a UTC day.

Plain functions over the day's audit lines (the receiver's `reports/live/tradingview/*.jsonl`),
its stored signals, dead letters, pipeline runs and champion changes; the pipeline layer reads
those and writes the files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

ACCEPTED = (200, 202)  # 200: a duplicate of an accepted alert
OOD_SHARE_LIMIT = 0.2
LATENCY_P95_LIMIT_MS = 500.0
PERCENTILES = (50, 95, 99)
LIVE_DIR = Path("live")


def audit_path(report_dir: Path, day: date | str) -> Path:
    """The receiver's audit file of a UTC day: `REPORT_DIR/live/tradingview/YYYY-MM-DD.jsonl`."""
    return report_dir / LIVE_DIR / "tradingview" / f"{day}.jsonl"


def daily_paths(report_dir: Path, day: date | str) -> tuple[Path, Path]:
    """The day's summary: `REPORT_DIR/live/daily/YYYY-MM-DD.md` and `.json`."""
    folder = report_dir / LIVE_DIR / "daily"
    return folder / f"{day}.md", folder / f"{day}.json"


def notes_path(report_dir: Path) -> Path:
    """The validation log the daily job appends anomalies to, beside the operator's notes."""
    return report_dir / LIVE_DIR / "daily_notes.md"


@dataclass(frozen=True, slots=True)
class DayFacts:
    """What the day left behind. `dead_letters`: alert id -> reason (None: the topic could not be
    read); `runs` and `promotions`: plain dicts of the day's pipeline runs and champion changes."""

    day: str
    audit: Sequence[Mapping[str, Any]]
    signals: Sequence[Mapping[str, Any]]
    dead_letters: Mapping[str, str] | None
    runs: Sequence[Mapping[str, Any]] = ()
    promotions: Sequence[Mapping[str, Any]] = ()
    parity: Sequence[Mapping[str, Any]] = field(default_factory=list)  # the mismatches
    parity_checked: int | None = None  # signals resolved that day and checked; None: not run


def complete_audit(facts: DayFacts) -> list[dict[str, Any]]:
    """Each audit line with the signals its alert produced (model, version, action, latency) and
    its dead-letter reason; recomputed from the receiver's fields, so running it twice is safe."""
    by_alert: dict[str, list[dict[str, Any]]] = {}
    for signal in facts.signals:
        by_alert.setdefault(signal["alert_id"], []).append(
            {
                "model_key": signal["model_key"],
                "model_version": signal["model_version"],
                "action": signal["action"],
                "ood": signal["ood"],
                "latency_ms": round(float(signal["latency_ms"]), 3),
            }
        )
    letters = facts.dead_letters or {}
    completed = []
    for line in facts.audit:
        alert_id = line.get("alert_id")
        own = sorted(by_alert.get(alert_id or "", []), key=lambda s: s["model_key"])
        completed.append(
            {**line, "signals": own, "dead_letter": letters.get(alert_id) if alert_id else None}
        )
    return completed


def _percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {f"p{p}": None for p in PERCENTILES}
    found = np.percentile(np.asarray(values, dtype=float), PERCENTILES)
    return {f"p{p}": round(float(v), 3) for p, v in zip(PERCENTILES, found, strict=True)}


def daily_summary(facts: DayFacts, completed: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The day in figures: requests by status, alerts, signals by action, dead letters by reason,
    receipt-to-signal latency percentiles, OOD share, pipeline runs and promotions."""
    accepted = {x["alert_id"] for x in completed if x["status"] in ACCEPTED and x["alert_id"]}
    answered = {x["alert_id"] for x in completed if x["signals"] or x["dead_letter"]}
    signals = [s for x in completed for s in x["signals"]]
    ood = sum(bool(s["ood"]) for s in signals)
    letters = [x["dead_letter"] for x in completed if x["dead_letter"]]
    return {
        "day": facts.day,
        "requests": len(completed),
        "requests_by_status": dict(sorted(Counter(str(x["status"]) for x in completed).items())),
        "alerts_accepted": len(accepted),
        "alerts_without_outcome": sorted(accepted - answered),
        "signals": len(signals),
        "signals_by_action": dict(sorted(Counter(s["action"] for s in signals).items())),
        "dead_letters_by_reason": (
            None if facts.dead_letters is None else dict(sorted(Counter(letters).items()))
        ),
        "latency_ms": _percentiles([s["latency_ms"] for s in signals]),
        "ood_share": round(ood / len(signals), 4) if signals else None,
        "pipeline_runs": [dict(run) for run in facts.runs],
        "promotions": [dict(event) for event in facts.promotions],
        "parity_checked": facts.parity_checked,
        "parity_mismatches": [dict(row) for row in facts.parity],
    }


def daily_anomalies(summary: Mapping[str, Any]) -> list[str]:
    """What an operator should look at, one sentence each; empty on a quiet day."""
    found = []
    if summary["alerts_without_outcome"]:
        missing = summary["alerts_without_outcome"]
        found.append(
            f"{len(missing)} accepted alert(s) have neither a signal nor a dead letter "
            f"(first: {missing[0]}): look at the consumer's lag and the outbox"
        )
    if summary["dead_letters_by_reason"] is None:
        found.append("the dead-letter topic could not be read: dead letters are not counted")
    elif summary["dead_letters_by_reason"]:
        reasons = ", ".join(f"{k} {v}" for k, v in summary["dead_letters_by_reason"].items())
        found.append(f"dead letters: {reasons} (`itff dlq list`)")
    server_errors = sum(v for k, v in summary["requests_by_status"].items() if k.startswith("5"))
    if server_errors:
        found.append(f"{server_errors} webhook request(s) answered 5xx")
    if (share := summary["ood_share"]) is not None and share > OOD_SHARE_LIMIT:
        found.append(f"{share:.0%} of the signals were out of distribution (ood)")
    p95 = summary["latency_ms"]["p95"]
    if p95 is not None and p95 > LATENCY_P95_LIMIT_MS:
        found.append(f"p95 receipt-to-signal latency {p95:.0f} ms (> {LATENCY_P95_LIMIT_MS:.0f})")
    runs = summary["pipeline_runs"]
    if not runs:
        found.append("no pipeline run started this day")
    found.extend(
        f"pipeline run {run['run_id']} {run['status']}: {run.get('error') or 'no error recorded'}"
        for run in runs
        if run["status"] == "failed"
    )
    if summary["parity_mismatches"]:
        found.append(
            f"{len(summary['parity_mismatches'])} live/backtest parity mismatch(es): "
            "`itff report parity`"
        )
    return found


def daily_markdown(summary: Mapping[str, Any], anomalies: Sequence[str]) -> str:
    """The summary as a short Markdown page."""
    latency = summary["latency_ms"]
    letters = summary["dead_letters_by_reason"]
    ood = summary["ood_share"]
    lines = [
        f"# Daily report {summary['day']}",
        "",
        f"- webhook requests: {summary['requests']} ({_pairs(summary['requests_by_status'])})",
        f"- alerts accepted: {summary['alerts_accepted']}",
        f"- signals: {summary['signals']} ({_pairs(summary['signals_by_action'])})",
        "- dead letters: "
        + ("unknown (topic unreachable)" if letters is None else _pairs(letters) or "none"),
        "- latency receipt to signal (ms): "
        + ", ".join(f"{k} {_num(v)}" for k, v in latency.items()),
        f"- OOD share: {'n/a' if ood is None else f'{ood:.1%}'}",
        "- pipeline runs: "
        + (", ".join(f"{r['run_id']} {r['status']}" for r in summary["pipeline_runs"]) or "none"),
        "- promotions: "
        + (
            ", ".join(
                f"{p['model_key']} {p['event']} {p['version']}" for p in summary["promotions"]
            )
            or "none"
        ),
        (
            f"- parity: {len(summary['parity_mismatches'])} mismatch(es) in "
            f"{_num(summary['parity_checked'])} signals resolved this day"
        ),
        *[
            f"  - {p['model_key']} {p['model_version']} {p['bar_time']}: {p['problem']}"
            for p in summary["parity_mismatches"]
        ],
        "",
        "## Anomalies",
        "",
        *([f"- {a}" for a in anomalies] or ["none"]),
        "",
    ]
    return "\n".join(lines)


def _pairs(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items())


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"
