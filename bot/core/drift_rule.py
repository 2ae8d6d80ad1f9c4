"""Live against backtest: which stored metrics are compared, and the drift rule. Pure.

One rule for the dashboard's "drifting" flag, the scheduler's `itff_live_backtest_drift` gauge and
the weekly verdict: a rate metric (accuracy, precision, recall; fractions) drifts when its live
value departs from its backtest value by more than the margin (`ITFF_DRIFT_MARGIN`), either way.
The backtest is the batch path on exactly the live bars ("backtest on the live period",
`bot.core.live_period`) once that covers `MIN_SIGNALS` bars, the one stored with the champion
otherwise (`compared`); each verdict says which.
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
SAME_PERIOD = "backtest on the live period"
STORED = "stored backtest"
# the gauge's `comparison` label for each
COMPARISON_LABELS = {SAME_PERIOD: "live_period", STORED: "stored"}


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


@dataclass(frozen=True, slots=True)
class Comparison:
    """What a drift verdict compares: `judged` (live) against `reference`; `name` says which
    reference (`SAME_PERIOD` or `STORED`), `bars` how many live bars the batch path covered."""

    judged: Mapping[str, Any]
    reference: Mapping[str, Any]
    name: str
    bars: int

    @property
    def label(self) -> str:
        return COMPARISON_LABELS[self.name]


def compared(
    live: Mapping[str, Any] | None,
    stored: Mapping[str, Any] | None,
    same_period: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    min_bars: int = MIN_SIGNALS,
) -> Comparison:
    """The comparison a drift verdict uses. `same_period`: `{"live": ..., "batch": ...}`, the
    metrics of the live signals and of the batch path over exactly their bars; used when the
    batch path covers at least `min_bars` bars, `live` against `stored` otherwise."""
    pair = same_period or {}
    batch = pair.get("batch") or {}
    bars = int(SIGNALS.read(batch) or 0)
    if bars >= min_bars:
        return Comparison(pair.get("live") or {}, batch, SAME_PERIOD, bars)
    return Comparison(live or {}, stored or {}, STORED, bars)


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
    same_period: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> dict[tuple[str, str, str], float]:
    """`{(model_key, metric, comparison label): |live - backtest|}` for each champion
    (`backtest` holds the champions' stored metrics) whose live snapshot counts at least
    `min_signals` signals; `same_period`, per model_key, as `compared` takes it."""
    values: dict[tuple[str, str, str], float] = {}
    for key, stored in sorted(backtest.items()):
        snapshot = live.get(key)
        if snapshot is None or (SIGNALS.read(snapshot) or 0.0) < min_signals:
            continue
        chosen = compared(snapshot, stored, (same_period or {}).get(key), min_bars=min_signals)
        for metric, gap in gaps(chosen.judged, chosen.reference).items():
            values[(key, metric.name, chosen.label)] = abs(gap)
    return values
