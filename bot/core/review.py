"""The 30-day review that ends the live validation: per champion the live profit factor, MAE,
directional accuracy and latency against its backtest, the incidents and weekly verdicts of the
period, and a recommendation (keep, retrain, roll back) with its evidence. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bot.core.drift_rule import METRICS, MIN_SIGNALS, SAME_PERIOD, SIGNALS, STORED

KEEP, RETRAIN, ROLL_BACK, WATCH = "keep", "retrain", "roll back", "insufficient data"
ROLLBACK_CHECKLIST = "deploy/rollback_checklist.md"
REVIEWED = ("accuracy", "precision", "recall", "mae", "profit_factor", "sharpe")


def recommend(
    live: Mapping[str, Any],
    backtest: Mapping[str, Any],
    *,
    margin: float,
    promoted_in_period: bool,
    min_signals: int = MIN_SIGNALS,
) -> tuple[str, list[str]]:
    """The recommendation and the evidence, in words.

    Too few resolved signals: keep watching. Directional accuracy below the backtest by more than
    the margin, or a live profit factor under 1 where the backtest's was above: roll back when the
    champion was promoted during the period (the previous version is the known good one), else
    retrain. Otherwise keep."""
    signals = int(SIGNALS.read(live) or 0)
    if signals < min_signals:
        return WATCH, [f"{signals} resolved signals (< {min_signals}): extend the validation"]
    evidence = []
    accuracy, accuracy_bt = _read("accuracy", live), _read("accuracy", backtest)
    if accuracy is not None and accuracy_bt is not None and accuracy_bt - accuracy > margin:
        gap = 100 * (accuracy - accuracy_bt)
        evidence.append(f"directional accuracy {accuracy:.3f} vs {accuracy_bt:.3f} ({gap:+.1f} pp)")
    pf, pf_bt = _read("profit_factor", live), _read("profit_factor", backtest)
    if pf is not None and pf_bt is not None and pf < 1.0 <= pf_bt:
        evidence.append(f"profit factor {pf:.2f} live vs {pf_bt:.2f} backtest")
    if not evidence:
        return KEEP, [f"{signals} resolved signals, live within the margin of the backtest"]
    if promoted_in_period:
        return ROLL_BACK, [*evidence, f"promoted during the period: see {ROLLBACK_CHECKLIST}"]
    return RETRAIN, evidence


def _read(name: str, metrics: Mapping[str, Any]) -> float | None:
    return next(m for m in METRICS if m.name == name).read(metrics)


def latency_percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50 and p95 of receipt-to-signal latencies, in ms."""
    if not values:
        return {"p50": None, "p95": None}
    p50, p95 = np.percentile(np.asarray(values, dtype=float), [50, 95])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3)}


def review_markdown(since: str, until: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """One section per champion: metrics live / backtest, latency, incidents, verdicts,
    recommendation with its evidence."""
    lines = [f"# Live validation review {since} to {until}", ""]
    for row in rows:
        latency = row["latency_ms"]
        lines += [
            f"## {row['model_key']} ({row['version']}): {row['recommendation']}",
            "",
            "| metric | live | stored backtest | backtest on the live period |",
            "|---|---|---|---|",
            *[
                f"| {name} | {_num(row['live'].get(name))} | {_num(row['backtest'].get(name))} "
                f"| {_num(row.get('live_period', {}).get(name))} |"
                for name in REVIEWED
            ],
            "",
            f"- resolved signals: {row['signals']}",
            f"- recommendation compared with: {_compared(row)}",
            f"- latency receipt to signal: {_latency(latency)}",
            f"- incidents: {_pairs(row['incidents']) or 'none'}",
            f"- weekly verdicts (30d): {', '.join(row['verdicts']) or 'none on file'}",
            *[f"- evidence: {item}" for item in row["evidence"]],
            "",
        ]
    if not rows:
        lines += ["No champion.", ""]
    lines += [f"Rollback: [{ROLLBACK_CHECKLIST}](../../../{ROLLBACK_CHECKLIST})", ""]
    return "\n".join(lines)


def _compared(row: Mapping[str, Any]) -> str:
    name = row.get("compared_with", STORED)
    return f"{name} ({row['compared_bars']} bars)" if name == SAME_PERIOD else name


def _latency(latency: Mapping[str, float | None]) -> str:
    return f"p50 {_num(latency['p50'])} ms, p95 {_num(latency['p95'])} ms"


def _num(value: Any) -> str:
    return "n/a" if not isinstance(value, int | float) else f"{value:.4g}"


def _pairs(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v)
