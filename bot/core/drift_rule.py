"""Live against backtest: which stored metrics are compared, and the drift rule. Pure.

One rule for the dashboard's "drifting" flag and the scheduler's `itff_live_backtest_drift` gauge:
a rate metric (accuracy, precision, recall; fractions) drifts when its live value departs from the
backtest value stored with the champion by more than the margin (`ITFF_DRIFT_MARGIN`), either way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["rate", "ratio", "error", "count"]
# The window the gauge watches, and the resolved signals it needs before a gap means anything
# (docs/live-validation.md: judge a model over at least 20 resolved signals).
GAUGE_WINDOW = "30d"
MIN_SIGNALS = 20


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    label: str
    kind: Kind
    aliases: tuple[str, ...] = ()

    def read(self, metrics: Mapping[str, Any] | None) -> float | None:
        """The stored value under the name or an alias; `None` when absent or not finite."""
        for key in (self.name, *self.aliases):
            value = (metrics or {}).get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value) if math.isfinite(value) else None
        return None


METRICS: tuple[Metric, ...] = (
    Metric("accuracy", "Directional accuracy", "rate", ("directional_accuracy", "hit_rate")),
    Metric("precision", "Precision", "rate"),
    Metric("recall", "Recall", "rate"),
    Metric("mae", "MAE", "error"),
    Metric("profit_factor", "Profit factor", "ratio"),
    Metric("sharpe", "Sharpe", "ratio"),
    Metric("signals", "Signals", "count", ("signal_count", "n", "n_signals")),
)
DRIFT_CHECKED = tuple(metric for metric in METRICS if metric.kind == "rate")
SIGNALS = next(metric for metric in METRICS if metric.name == "signals")


def gaps(live: Mapping[str, Any], backtest: Mapping[str, Any]) -> dict[Metric, float]:
    """Live minus backtest of each compared metric that both sides hold (fractions)."""
    found: dict[Metric, float] = {}
    for metric in DRIFT_CHECKED:
        now, then = metric.read(live), metric.read(backtest)
        if now is not None and then is not None:
            found[metric] = now - then
    return found


def drift(live: Mapping[str, Any], backtest: Mapping[str, Any], margin: float) -> list[str]:
    """The rate metrics where live departs from backtest by more than `margin`, in words."""
    return [
        f"{metric.label.lower()} {100 * gap:+.1f} pp"
        for metric, gap in gaps(live, backtest).items()
        if abs(gap) > margin
    ]


def gauge_values(
    live: Mapping[str, Mapping[str, Any]],
    backtest: Mapping[str, Mapping[str, Any]],
    *,
    min_signals: int = MIN_SIGNALS,
) -> dict[tuple[str, str], float]:
    """`{(model_key, metric): |live - backtest|}` for each champion (`backtest` holds the
    champions' stored metrics) whose live snapshot counts at least `min_signals` signals."""
    values: dict[tuple[str, str], float] = {}
    for key, stored in sorted(backtest.items()):
        snapshot = live.get(key)
        if snapshot is None or (SIGNALS.read(snapshot) or 0.0) < min_signals:
            continue
        for metric, gap in gaps(snapshot, stored).items():
            values[(key, metric.name)] = abs(gap)
    return values
