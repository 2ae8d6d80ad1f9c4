"""Live next to backtest: the overview table and its drift flags. Pure.

Backtest figures are the out-of-sample metrics the pipeline stored on the model version; live
figures are the latest snapshot the live-metrics job stored. The drift flag follows the weekly
verdict's rule (`bot.core.drift_rule.compared`): against the backtest on the live period (the
batch path on exactly the live bars, `panel_app.live_period`) when it covers at least 20 bars,
against the stored backtest otherwise; the `comparison` column says which. As in the weekly
verdict and the drift gauge, a live snapshot of fewer than `MIN_SIGNALS` (20) resolved signals is
not judged: its row says so and is not flagged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from bot.core import METRICS, MIN_SIGNALS, SAME_PERIOD, SIGNALS, Metric, compared, drift

__all__ = [
    "METRICS",
    "OVERVIEW_COLUMNS",
    "SOURCES",
    "WITHIN_MARGIN",
    "Metric",
    "column",
    "live_vs_backtest",
]

SOURCES = ("live", "backtest")
WITHIN_MARGIN = "within margin"  # a judged model that does not drift


def column(metric: Metric, source: str) -> str:
    return f"{metric.name}_{source}"


OVERVIEW_COLUMNS = (  # the verdict and its comparison first: visible without scrolling
    "model_key",
    "version",
    "drift",
    "comparison",
    *(column(metric, source) for metric in METRICS for source in SOURCES),
    "drifting",
)
SamePeriodMetrics = Mapping[str, Mapping[str, Mapping[str, Any]]]


def live_vs_backtest(
    champions: pd.DataFrame,
    live: pd.DataFrame,
    margin: float,
    same_period: SamePeriodMetrics | None = None,
) -> pd.DataFrame:
    """One row per champion: each metric live and backtest side by side, the drift flag and the
    comparison it used. `same_period`: per model_key, `{"live": ..., "batch": ...}` metrics of
    live and of the batch path on exactly the live bars."""
    snapshots = dict(zip(live["model_key"], live["metrics"], strict=True))
    rows = [
        _row(
            champion,
            snapshots.get(champion.model_key),
            (same_period or {}).get(champion.model_key),
            margin,
        )
        for champion in _rows(champions)
    ]
    return pd.DataFrame(rows, columns=list(OVERVIEW_COLUMNS))


def _rows(frame: pd.DataFrame) -> list[Any]:
    return list(frame.sort_values("model_key").itertuples(index=False))


def _row(
    champion: Any,
    live: Mapping[str, Any] | None,
    same_period: Mapping[str, Mapping[str, Any]] | None,
    margin: float,
) -> dict[str, Any]:
    backtest = champion.metrics or {}
    row: dict[str, Any] = {"model_key": champion.model_key, "version": champion.version}
    for metric in METRICS:
        row[column(metric, "live")] = metric.read(live)
        row[column(metric, "backtest")] = metric.read(backtest)
    chosen = compared(live, backtest, same_period)
    if live is None and chosen.name != SAME_PERIOD:
        row["drift"], row["comparison"], row["drifting"] = "no live snapshot yet", "", False
        return row
    signals = int(SIGNALS.read(live) or 0)
    if chosen.name != SAME_PERIOD and signals < MIN_SIGNALS:
        row["drift"] = f"not judged: {signals} resolved signals, fewer than {MIN_SIGNALS}"
        row["comparison"], row["drifting"] = chosen.name, False
        return row
    found = drift(chosen.judged, chosen.reference, margin)
    row["drift"] = "; ".join(found) if found else WITHIN_MARGIN
    row["comparison"] = (
        f"{SAME_PERIOD} ({chosen.bars} bars)" if chosen.name == SAME_PERIOD else chosen.name
    )
    row["drifting"] = bool(found)
    return row
