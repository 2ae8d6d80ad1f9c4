"""Outcomes of live signals and live metrics, computed with the backtest's own functions.

Pure: numbers in, numbers out (no database, no Kafka). Conventions, the same as the backtest
(`bot.core.backtesting`, `bot.core.targets`):

- a signal at bar t with horizon h is resolved once bar t+h exists; its `realised_return` is the
  forward log return log(c[t+h] / c[t]) (`bot.core.targets.forward_log_return`), and `hit` says
  whether the model's up/down call was right (direction models: prediction > 0.5 means up; return
  models: prediction > 0);
- its `strategy_return` is the gross one-bar return of the signal's position (buy +1, sell -1,
  hold 0) held from the close of t to the close of t+1, p * (c[t+1] / c[t] - 1);
- live metrics replay a model's resolved signals, in bar order, through
  `bot.core.backtesting.backtest` (costs of position changes included) and `bot.core.scores`, so
  that they compare with the backtest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from bot.core import scores
from bot.core.backtesting import backtest
from bot.core.intervals import periods_per_year
from bot.core.live_aggregates import POSITIONS, window_days_start
from bot.core.targets import neutral_score

WINDOWS: tuple[tuple[str, timedelta | None], ...] = (
    ("7d", timedelta(days=7)),
    ("30d", timedelta(days=30)),
    ("all", None),
)
LIVE_COLUMNS = (
    "model_key",
    "target",
    "interval",
    "bar_time",
    "prediction",
    "probability",
    "action",
    "realised_return",
    "strategy_return",
)


@dataclass(frozen=True, slots=True)
class Resolution:
    """The outcome of one signal (None while bar t+h is not known)."""

    exit_time: datetime
    realised_return: float
    hit: bool
    strategy_return: float


def predicted_up(target: str, prediction: float) -> bool:
    return prediction > neutral_score(target)


def resolve(
    bars: pd.DataFrame,
    *,
    bar_time: datetime,
    horizon: int,
    target: str,
    prediction: float,
    action: str,
) -> Resolution | None:
    """The outcome of a signal made at `bar_time` from a bars frame that holds the later bars."""
    return resolve_all(
        bars,
        bar_times=[bar_time],
        horizons=[horizon],
        targets=[target],
        predictions=[prediction],
        actions=[action],
    )[0]


def resolve_all(
    bars: pd.DataFrame,
    *,
    bar_times: Sequence[datetime],
    horizons: Sequence[int],
    targets: Sequence[str],
    predictions: Sequence[float],
    actions: Sequence[str],
) -> list[Resolution | None]:
    """`resolve` for many signals at once: one search over the bars for all of them (the
    consumer resolves thousands of signals a second under load)."""
    if not bar_times:
        return []
    index = pd.DatetimeIndex(bars.index)
    stamps = index.asi8  # ns since the epoch, UTC (the index is time-zone aware)
    wanted = pd.DatetimeIndex(list(bar_times)).asi8
    positions = np.searchsorted(stamps, wanted)
    exits = positions + np.asarray(horizons, dtype=np.int64)
    count = len(stamps)
    found = positions < count
    found[found] = stamps[positions[found]] == wanted[found]
    found &= exits < count
    chosen = np.flatnonzero(found)
    entries, ends = positions[chosen], exits[chosen]
    close = bars["close"].to_numpy(dtype=float)
    realised = np.log(close[ends] / close[entries])
    one_bar = close[entries + 1] / close[entries] - 1.0
    exit_times = index[ends].to_pydatetime()
    resolutions: list[Resolution | None] = [None] * len(wanted)
    for k, i in enumerate(chosen.tolist()):
        change = float(realised[k])
        resolutions[i] = Resolution(
            exit_time=exit_times[k],
            realised_return=change,
            hit=predicted_up(targets[i], predictions[i]) == (change > 0),
            strategy_return=POSITIONS.get(actions[i], 0.0) * float(one_bar[k]),
        )
    return resolutions


def model_metrics(rows: pd.DataFrame, *, cost_bps: float) -> dict[str, float | None]:
    """Live metrics of one model from its resolved signals (one row per bar, any order)."""
    rows = rows.sort_values("bar_time")
    target = str(rows["target"].iloc[0]) if len(rows) else "direction"
    realised = rows["realised_return"].to_numpy(dtype=float)
    prediction = rows["prediction"].to_numpy(dtype=float)
    up_call = (prediction > neutral_score(target)).astype(float)  # predicted_up, vectorised
    out: dict[str, float | None] = dict(scores.classification_metrics(realised > 0, up_call))
    out["mae"] = scores.mae(realised, prediction) if target == "return" else None
    out.update(_trading(rows, cost_bps=cost_bps))
    out["signal_count"] = float(len(rows))
    return out


def _trading(rows: pd.DataFrame, *, cost_bps: float) -> dict[str, float | None]:
    if rows.empty:
        return {"profit_factor": None, "sharpe": None, "total_return": None}
    positions = rows["action"].map(POSITIONS).fillna(0.0).to_numpy(dtype=float)
    gross = rows["strategy_return"].to_numpy(dtype=float)
    # gross = p * r; the backtest wants r itself (any value where p = 0 gives the same result)
    one_bar = np.divide(gross, positions, out=np.zeros_like(gross), where=positions != 0)
    result = backtest(
        positions,
        one_bar,
        cost_bps=cost_bps,
        periods_per_year=periods_per_year(str(rows["interval"].iloc[0])),
    )
    summary = result.metrics
    return {
        "profit_factor": summary["profit_factor"],
        "sharpe": summary["sharpe"],
        "total_return": summary["total_return"],
    }


def live_metrics(
    rows: Sequence[Any] | pd.DataFrame,
    *,
    now: datetime,
    cost_bps: float,
    windows: tuple[tuple[str, timedelta | None], ...] = WINDOWS,
) -> dict[tuple[str, str], dict[str, float | None]]:
    """Metrics per (model_key, window) over resolved signals whose bar is inside the window: a
    window of span d starts at the UTC midnight of the day d before `now` (whole days, as the
    running aggregates of `bot.core.live_aggregates` count them)."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows, columns=LIVE_COLUMNS)
    out: dict[tuple[str, str], dict[str, float | None]] = {}
    if frame.empty:
        return out
    times = pd.to_datetime(frame["bar_time"], utc=True)
    for name, span in windows:
        inside = frame if span is None else frame[times >= window_days_start(now, span)]
        for key, group in inside.groupby("model_key", sort=True):
            out[(str(key), name)] = model_metrics(group, cost_bps=cost_bps)
    return out
