"""Live next to backtest, from stored numbers only: the overview table and its drift flags. Pure.

Backtest figures are the out-of-sample metrics the pipeline stored on the model version; live
figures are the latest snapshot the live-metrics job stored. Nothing here touches a model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

Kind = Literal["rate", "ratio", "error", "count"]


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
SOURCES = ("live", "backtest")


def column(metric: Metric, source: str) -> str:
    return f"{metric.name}_{source}"


OVERVIEW_COLUMNS = (
    "model_key",
    "version",
    "drift",
    *(column(metric, source) for metric in METRICS for source in SOURCES),
    "drifting",
)


def drift(live: Mapping[str, Any], backtest: Mapping[str, Any], margin: float) -> list[str]:
    """The rate metrics where live departs from backtest by more than `margin`, in words."""
    found = []
    for metric in DRIFT_CHECKED:
        now, then = metric.read(live), metric.read(backtest)
        if now is not None and then is not None and abs(now - then) > margin:
            found.append(f"{metric.label.lower()} {100 * (now - then):+.1f} pp")
    return found


def live_vs_backtest(champions: pd.DataFrame, live: pd.DataFrame, margin: float) -> pd.DataFrame:
    """One row per champion: each metric live and backtest side by side, and the drift flag."""
    snapshots = dict(zip(live["model_key"], live["metrics"], strict=True))
    rows = [
        _row(champion, snapshots.get(champion.model_key), margin) for champion in _rows(champions)
    ]
    columns = ["model_key", "version"]
    columns += [column(metric, source) for metric in METRICS for source in SOURCES]
    columns += ["drift", "drifting"]
    return pd.DataFrame(rows, columns=columns)


def _rows(frame: pd.DataFrame) -> list[Any]:
    return list(frame.sort_values("model_key").itertuples(index=False))


def _row(champion: Any, live: Mapping[str, Any] | None, margin: float) -> dict[str, Any]:
    backtest = champion.metrics or {}
    row: dict[str, Any] = {"model_key": champion.model_key, "version": champion.version}
    for metric in METRICS:
        row[column(metric, "live")] = metric.read(live)
        row[column(metric, "backtest")] = metric.read(backtest)
    if live is None:
        row["drift"], row["drifting"] = "no live snapshot yet", False
        return row
    found = drift(live, backtest, margin)
    row["drift"] = "; ".join(found) if found else "within margin"
    row["drifting"] = bool(found)
    return row
