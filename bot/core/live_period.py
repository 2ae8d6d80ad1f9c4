"""Backtest on the live period: the batch path's positions over exactly the live bars. Pure.

For each resolved live signal of a model version, the batch path (`bot.core.parity.batch_scores`,
the code `itff evaluate` and the backtest use) scores the same bar from the stored bars, the
version's thresholds turn the score into a position, and that position is held for the next bar.
The result has the live rows' shape (`LIVE_COLUMNS`), so `bot.core.live_scores.live_metrics`
measures it exactly as it measures live, costs of position changes included. Live and batch then
differ only by the code path: the same bars, the same period, the same outcomes. (The batch path
has no OOD override: a live signal held as OOD may trade in the batch path.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bot.core.backtesting import positions_from_scores
from bot.core.bundle import ModelBundle
from bot.core.drift_rule import SAME_PERIOD, STORED
from bot.core.live_scores import LIVE_COLUMNS
from bot.core.parity import ACTIONS, batch_scores

__all__ = ["SAME_PERIOD", "STORED", "batch_live_rows"]


def batch_live_rows(live: pd.DataFrame, bars: pd.DataFrame, bundle: ModelBundle) -> pd.DataFrame:
    """The batch path's rows for the live rows of `bundle`'s version whose bar it can score and
    whose next bar is stored (`LIVE_COLUMNS`; the realised outcome is the live row's)."""
    if live.empty or bars.empty:
        return pd.DataFrame(columns=LIVE_COLUMNS)
    scores = batch_scores(bars, bundle)
    close = bars["close"].astype(float)
    one_bar = close.shift(-1) / close - 1.0
    times = pd.DatetimeIndex(pd.to_datetime(live["bar_time"], utc=True))
    score = scores.reindex(times).to_numpy(dtype=float)
    forward = one_bar.reindex(times).to_numpy(dtype=float)
    keep = np.isfinite(score) & np.isfinite(forward)
    positions = positions_from_scores(score[keep], bundle.thresholds)
    rows = live.loc[keep].copy()
    rows["prediction"] = score[keep]
    rows["probability"] = score[keep] if bundle.target == "direction" else None
    rows["action"] = [ACTIONS[float(p)] for p in positions]
    rows["strategy_return"] = positions * forward[keep]
    out: pd.DataFrame = rows.loc[:, list(LIVE_COLUMNS)].reset_index(drop=True)
    return out
