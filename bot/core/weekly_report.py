"""The weekly report of the live validation: each champion's live metrics against its backtest over
7 and 30 days, with the drift rule's verdict (`bot.core.drift_rule`). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot.core.drift_rule import (
    DRIFT_CHECKED,
    MIN_SIGNALS,
    SAME_PERIOD,
    SIGNALS,
    STORED,
    compared,
    drift,
)

WEEKLY_WINDOWS = ("7d", "30d")
WITHIN, DRIFT, INSUFFICIENT = "within margin", "drift", "insufficient data"


def weekly_paths(report_dir: Path, week: str) -> tuple[Path, Path]:
    """`REPORT_DIR/live/weekly/YYYY-Www.md` and `.json`."""
    folder = report_dir / "live" / "weekly"
    return folder / f"{week}.md", folder / f"{week}.json"


def weekly_rows(
    live: Mapping[tuple[str, str], Mapping[str, Any]],
    backtest: Mapping[str, Mapping[str, Any]],
    *,
    margin: float,
    min_signals: int = MIN_SIGNALS,
    same_period: Mapping[tuple[str, str], Mapping[str, Mapping[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """One row per champion (`backtest`: its stored metrics) and window: live and backtest value
    of every rate metric, the signal count and the verdict.

    `same_period`: per (model_key, window), `{"live": ..., "batch": ...}`, the metrics of the
    champion version's live signals and of the batch path over exactly their bars
    (`bot.core.live_period`); the verdict compares those two when they cover at least
    `min_signals` bars, live with the stored backtest otherwise (`bot.core.drift_rule.compared`),
    and `comparison` says which. `stored_drift` keeps the stored backtest's drift either way (a
    regime change shows there, not in the same period)."""
    rows = []
    for key, stored in sorted(backtest.items()):
        for window in WEEKLY_WINDOWS:
            snapshot = live.get((key, window), {})
            pair = (same_period or {}).get((key, window), {})
            batch = pair.get("batch", {})
            chosen = compared(snapshot, stored, pair, min_bars=min_signals)
            signals = int(SIGNALS.read(snapshot) or 0)
            stored_drift = drift(snapshot, stored, margin)
            rows.append(
                {
                    "model_key": key,
                    "window": window,
                    "signals": signals,
                    "metrics": {
                        m.name: {
                            "live": m.read(snapshot),
                            "backtest": m.read(stored),
                            "live_period": m.read(batch),
                        }
                        for m in DRIFT_CHECKED
                    },
                    "comparison": chosen.name,
                    "live_period_bars": chosen.bars,
                    "stored_drift": stored_drift,
                    "verdict": _verdict(
                        signals, drift(chosen.judged, chosen.reference, margin), min_signals
                    ),
                }
            )
    return rows


def _verdict(signals: int, drifting: list[str], min_signals: int) -> str:
    if signals < min_signals:
        return INSUFFICIENT
    return f"{DRIFT}: {', '.join(drifting)}" if drifting else WITHIN


def weekly_markdown(week: str, rows: list[dict[str, Any]], margin: float) -> str:
    """The rows as a Markdown table per window."""
    lines = [f"# Weekly report {week}", "", f"Drift margin: {100 * margin:.0f} pp.", ""]
    names = [m.name for m in DRIFT_CHECKED]
    for window in WEEKLY_WINDOWS:
        lines += [
            f"## Last {window}",
            "",
            "| model | signals | "
            + " | ".join(f"{n} live / backtest / live period" for n in names)
            + " | verdict | compared with |",
            "|---|---|" + "---|" * len(names) + "---|---|",
        ]
        for row in (r for r in rows if r["window"] == window):
            cells = [_pair(row["metrics"][n]) for n in names]
            lines.append(
                f"| {row['model_key']} | {row['signals']} | "
                + " | ".join(cells)
                + f" | {row['verdict']} | {_compared(row)} |"
            )
        if not any(r["window"] == window for r in rows):
            lines.append("| no champion | | " + " | " * len(names) + " | |")
        lines.append("")
    return "\n".join(lines)


def _compared(row: Mapping[str, Any]) -> str:
    if row["comparison"] == SAME_PERIOD:
        note = f"{SAME_PERIOD} ({row['live_period_bars']} bars)"
        stored = "; ".join(row["stored_drift"]) or "within margin"
        return f"{note}; vs {STORED}: {stored}"
    return STORED


def _pair(values: Mapping[str, float | None]) -> str:
    return " / ".join(
        "n/a" if values.get(side) is None else f"{values[side]:.3f}"
        for side in ("live", "backtest", "live_period")
    )
