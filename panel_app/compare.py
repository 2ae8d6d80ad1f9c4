"""Live next to backtest, from stored numbers only: the overview table and its drift flags. Pure.

Backtest figures are the out-of-sample metrics the pipeline stored on the model version; live
figures are the latest snapshot the live-metrics job stored. Nothing here touches a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from bot.core import METRICS, Metric, drift

__all__ = [
    "METRICS",
    "OVERVIEW_COLUMNS",
    "SOURCES",
    "Metric",
    "column",
    "live_vs_backtest",
]

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
