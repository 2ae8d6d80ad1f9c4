"""Recalibrated decision thresholds for a champion whose live precision or recall drifts. Pure.

The proposal is computed on the live window's resolved signals only: their scores (the
prediction the thresholds act on), the one-bar return after each signal's bar and its realised
return. The thresholds are chosen by training's own rule (`choose_thresholds`: the best Sharpe
among score quantiles and the neutral pair), and the effect of the current and proposed pairs is
measured by replaying the same signals through the backtest (`bot.core.backtesting`, costs
included): buy precision and recall (a buy call counts as "up") and the trading metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.core import scores
from bot.core.backtesting import backtest, positions_from_scores
from bot.core.bundle import Thresholds
from bot.core.drift_rule import MIN_SIGNALS
from bot.core.intervals import periods_per_year
from bot.core.walkforward import choose_thresholds

FloatArray = npt.NDArray[np.floating[Any]]
RECALIBRATED = ("precision", "recall")  # drift in these asks for a proposal


@dataclass(frozen=True, slots=True)
class Proposal:
    """Current and proposed thresholds of one champion, each with its effect on the live window."""

    model_key: str
    version: str
    signals: int
    current: Thresholds
    proposed: Thresholds
    effect: dict[str, dict[str, float | None]]  # "current" / "proposed" -> metrics

    def as_record(self) -> dict[str, Any]:
        return {
            "model_key": self.model_key,
            "version": self.version,
            "signals": self.signals,
            "current": {"buy": self.current.buy, "sell": self.current.sell},
            "proposed": {"buy": self.proposed.buy, "sell": self.proposed.sell},
            "effect": self.effect,
        }


def wants_recalibration(row: Mapping[str, Any], min_signals: int = MIN_SIGNALS) -> bool:
    """Whether a weekly row (`bot.core.weekly_report`) has enough signals and a precision or
    recall drift against the stored backtest (what the thresholds were chosen to give)."""
    return row["signals"] >= min_signals and any(
        item.startswith(RECALIBRATED) for item in row["stored_drift"]
    )


def threshold_effect(
    scores_: FloatArray,
    next_returns: FloatArray,
    realised: FloatArray,
    thresholds: Thresholds,
    *,
    cost_bps: float,
    interval: str,
) -> dict[str, float | None]:
    """Buy precision / recall and the backtest's trading metrics of `thresholds` on the signals."""
    positions = positions_from_scores(scores_, thresholds)
    calls = scores.classification_metrics(realised > 0, positions > 0)
    result = backtest(
        positions, next_returns, cost_bps=cost_bps, periods_per_year=periods_per_year(interval)
    ).metrics
    return {
        "precision": calls["precision"],
        "recall": calls["recall"],
        "buys": float((positions > 0).sum()),
        "sells": float((positions < 0).sum()),
        "profit_factor": _number(result.get("profit_factor")),
        "sharpe": _number(result.get("sharpe")),
        "total_return": _number(result.get("total_return")),
    }


def propose(
    *,
    model_key: str,
    version: str,
    target: str,
    interval: str,
    current: Thresholds,
    scores_: FloatArray,
    next_returns: FloatArray,
    realised: FloatArray,
    cost_bps: float,
) -> Proposal:
    """Thresholds chosen on the live signals (in bar order) and both pairs' effect on them."""
    s, r, y = (np.asarray(a, dtype=float) for a in (scores_, next_returns, realised))
    proposed = choose_thresholds(s, r, target=target, cost_bps=cost_bps, allow_short=True)
    effect = {
        name: threshold_effect(s, r, y, pair, cost_bps=cost_bps, interval=interval)
        for name, pair in (("current", current), ("proposed", proposed))
    }
    return Proposal(model_key, version, len(s), current, proposed, effect)


def proposal_markdown(proposals: list[Proposal], week: str) -> list[str]:
    """The Markdown section of the proposals (empty list when there is none)."""
    if not proposals:
        return []
    lines = [
        "## Recalibrated thresholds (precision or recall drift)",
        "",
        (
            "Chosen on the 30-day window's resolved live signals only; effect = those signals "
            "replayed through the backtest with costs. Apply with "
            f"`itff report weekly --week {week} --apply` (a new version, promoted)."
        ),
        "",
        (
            "| model | signals | thresholds (sell / buy) | buy precision | buy recall "
            "| buys / sells | profit factor | total return |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for item in proposals:
        for name, pair in (("current", item.current), ("proposed", item.proposed)):
            e = item.effect[name]
            lines.append(
                f"| {item.model_key} {name} | {item.signals} | {pair.sell:.4f} / {pair.buy:.4f} "
                f"| {_fmt(e['precision'])} | {_fmt(e['recall'])} "
                f"| {e['buys']:.0f} / {e['sells']:.0f} | {_fmt(e['profit_factor'])} "
                f"| {_fmt(e['total_return'])} |"
            )
    return [*lines, ""]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value):
        return float(value)
    return None
