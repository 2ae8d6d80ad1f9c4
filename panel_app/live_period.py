"""Backtest on the live period for the Overview and Equity tabs: the batch path's positions over
exactly each champion's live bars (`bot.core.live_period`), with costs, measured as live is.

The champion's version is loaded from the artifact registry (verified; cached per version) and
the result is cached until the champion's resolved signals change. Blocking: the dashboard calls
it in its loading thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from bot.contracts import ItffError
from bot.core import LIVE_COLUMNS, STORED, batch_live_rows, compared, drift
from bot.core.live_scores import model_metrics
from panel_app.queries import DashboardQueries

if TYPE_CHECKING:
    from bot.artifacts import ArtifactRegistry
    from bot.core import ModelBundle

SHOWN = ("accuracy", "precision", "recall", "total_return")
LIVE_PERIOD_COLUMNS = (
    "model_key",
    "version",
    "bars",
    *(f"{name}_{side}" for name in SHOWN for side in ("live", "batch")),
    "verdict",
    "comparison",
)


# a champion's table row, the batch path's rows, and {"live": ..., "batch": ...} metrics
Measured = tuple[dict[str, Any], pd.DataFrame, dict[str, dict[str, float | None]]]


@dataclass(frozen=True, slots=True)
class SamePeriod:
    """One row per champion (`LIVE_PERIOD_COLUMNS`), the batch path's per-bar returns, and per
    champion the metrics of live and of the batch path on the same bars (what the Overview's
    drift flag compares, `bot.core.drift_rule.compared`)."""

    table: pd.DataFrame
    returns: dict[str, pd.DataFrame] = field(default_factory=dict)  # bar_time, strategy_return
    metrics: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)


class LivePeriod:
    def __init__(self, registry: ArtifactRegistry | None, *, cost_bps: float) -> None:
        self.registry = registry
        self.cost_bps = cost_bps
        self._bundles: dict[tuple[str, str], ModelBundle] = {}
        self._results: dict[tuple[Any, ...], Measured] = {}
        self._lock = threading.Lock()

    def compute(
        self, queries: DashboardQueries, champions: pd.DataFrame, window: str, margin: float
    ) -> SamePeriod:
        rows = queries.live_rows(window)
        table, returns, metrics = [], {}, {}
        for key, version in zip(champions["model_key"], champions["version"], strict=True):
            mine = rows[(rows["model_key"] == key) & (rows["model_version"] == version)]
            row, batch, pair = self._one(queries, str(key), str(version), mine, margin)
            table.append(row)
            if not batch.empty:
                returns[str(key)] = batch.loc[:, ["bar_time", "strategy_return"]]
                metrics[str(key)] = pair
        frame = pd.DataFrame(table, columns=list(LIVE_PERIOD_COLUMNS))
        return SamePeriod(frame.sort_values("model_key").reset_index(drop=True), returns, metrics)

    def _one(
        self, queries: DashboardQueries, key: str, version: str, live: pd.DataFrame, margin: float
    ) -> Measured:
        stamp = (key, version, len(live), live["bar_time"].max() if len(live) else None, margin)
        with self._lock:
            if stamp in self._results:
                return self._results[stamp]
        result = self._measure(queries, key, version, live, margin)
        with self._lock:
            self._results = {k: v for k, v in self._results.items() if k[:2] != (key, version)}
            self._results[stamp] = result
        return result

    def _measure(
        self, queries: DashboardQueries, key: str, version: str, live: pd.DataFrame, margin: float
    ) -> Measured:
        row: dict[str, Any] = {"model_key": key, "version": version, "bars": 0}
        if live.empty:
            return row | {"verdict": "no live outcomes yet", "comparison": STORED}, _empty(), {}
        try:
            bundle = self._bundle(key, version)
            bars = queries.bars(str(live["symbol"].iloc[0]), str(live["interval"].iloc[0]))
            batch = batch_live_rows(live.loc[:, list(LIVE_COLUMNS)], bars, bundle)
        except (ItffError, ValueError, LookupError, OSError) as exc:
            return row | {"verdict": f"unavailable: {exc}", "comparison": STORED}, _empty(), {}
        same = live[live["bar_time"].isin(set(batch["bar_time"]))]
        ours = model_metrics(same.loc[:, list(LIVE_COLUMNS)], cost_bps=self.cost_bps)
        theirs = model_metrics(batch, cost_bps=self.cost_bps)
        row["bars"] = len(batch)
        for name in SHOWN:
            row[f"{name}_live"], row[f"{name}_batch"] = ours.get(name), theirs.get(name)
        pair = {"live": ours, "batch": theirs}
        chosen = compared(None, None, pair)  # the Overview's drift flag makes the same choice
        if chosen.name == STORED:
            verdict = f"{len(batch)} bars: too few, the drift flag compares with the {STORED}"
            return row | {"verdict": verdict, "comparison": STORED}, batch, pair
        found = drift(chosen.judged, chosen.reference, margin)
        verdict = f"drift: {'; '.join(found)}" if found else "within margin"
        return row | {"verdict": verdict, "comparison": chosen.name}, batch, pair

    def _bundle(self, key: str, version: str) -> ModelBundle:
        if self.registry is None:
            raise LookupError("no artifact registry configured for the dashboard")
        with self._lock:
            found = self._bundles.get((key, version))
        if found is None:
            found = self.registry.load(key, version)
            with self._lock:
                self._bundles[(key, version)] = found
        return found


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=list(LIVE_COLUMNS))
