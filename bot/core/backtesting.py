"""Vectorised backtest of positions with costs, and the rule that turns scores into positions.

Conventions (docs/forecasting.md):

* Position p_k in {-1, 0, +1} (sell / hold / buy; long-flat when shorting is off) is decided at the
  close of bar k and held to the close of bar k+1, earning r_k = c_{k+1} / c_k - 1.
* Trading from p_{k-1} to p_k costs `cost_bps` per side per unit:
  cost_k = bps / 1e4 * |p_k - p_{k-1}| (a reversal pays two sides), with p_{-1} = 0.
  Strategy return s_k = p_k * r_k - cost_k; equity
  E_k = prod(1 + s_j, j <= k) starting from 1.
* A trade is a maximal run of the same non-zero position. Its return is the sum of p * r over its
  bars minus its entry cost and, when it is closed inside the window, its exit cost (not
  compounded). Profit factor and win rate are computed over trades.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from bot.contracts import BadInput
from bot.core import scores
from bot.core.bundle import Thresholds

FloatArray = NDArray[np.floating[Any]]
BPS = 1e-4


@dataclass(frozen=True, slots=True)
class BacktestResult:
    positions: FloatArray
    strategy_returns: FloatArray
    equity: FloatArray
    trade_returns: FloatArray
    metrics: dict[str, float | None]

    def equity_frame(self, times: pd.Index) -> pd.DataFrame:
        """`time, position, strategy_return, equity`, one row per bar of the window."""
        return pd.DataFrame(
            {
                "time": times,
                "position": self.positions,
                "strategy_return": self.strategy_returns,
                "equity": self.equity,
            }
        )


def positions_from_scores(
    scores: FloatArray, thresholds: Thresholds, *, allow_short: bool = True
) -> FloatArray:
    """+1 where score >= buy, -1 (or 0 when long-flat) where score <= sell, 0 otherwise."""
    s = np.asarray(scores, dtype=float)
    short = -1.0 if allow_short else 0.0
    return np.where(s >= thresholds.buy, 1.0, np.where(s <= thresholds.sell, short, 0.0))


def strategy_returns(positions: FloatArray, returns: FloatArray, *, cost_bps: float) -> FloatArray:
    """Per-bar strategy returns p_k * r_k - cost_k."""
    return _strategy(*_checked(positions, returns), cost_bps)


def _strategy(p: FloatArray, r: FloatArray, cost_bps: float) -> FloatArray:
    trades = np.abs(np.diff(p, prepend=0.0))
    result: FloatArray = p * r - cost_bps * BPS * trades
    return result


def trade_returns(positions: FloatArray, returns: FloatArray, *, cost_bps: float) -> FloatArray:
    """Return of each trade (a run of one non-zero position), costs of both sides included."""
    return _trades(*_checked(positions, returns), cost_bps)


def _trades(p: FloatArray, r: FloatArray, cost_bps: float) -> FloatArray:
    if p.size == 0:
        return np.zeros(0)
    starts = np.flatnonzero(np.diff(p, prepend=np.nan) != 0)  # first bar of each run
    side = p[starts]
    gross = np.add.reduceat(p * r, starts)
    closed = np.append(starts[1:], p.size) < p.size  # a later run follows: the trade was closed
    held = side != 0
    cost = cost_bps * BPS * np.abs(side[held])
    result: FloatArray = gross[held] - cost - np.where(closed[held], cost, 0.0)
    return result


def backtest(
    positions: FloatArray,
    returns: FloatArray,
    *,
    cost_bps: float,
    periods_per_year: float,
) -> BacktestResult:
    """Simulate positions against next-bar returns; every metric of docs/forecasting.md."""
    p, r = _checked(positions, returns)
    strat = _strategy(p, r, cost_bps)
    equity = scores.equity_curve(strat)
    trades = _trades(p, r, cost_bps)
    summary = {
        "total_return": float(equity[-1] - 1.0) if equity.size else None,
        "cagr": scores.cagr(equity, periods_per_year),
        "sharpe": scores.sharpe(strat, periods_per_year),
        "sortino": scores.sortino(strat, periods_per_year),
        "max_drawdown": scores.max_drawdown(equity),
        "profit_factor": scores.profit_factor(trades),
        "win_rate": scores.win_rate(trades),
        "exposure": scores.exposure(p),
        "n_trades": float(trades.size),
    }
    return BacktestResult(p, strat, equity, trades, summary)


def _checked(positions: FloatArray, returns: FloatArray) -> tuple[FloatArray, FloatArray]:
    p = np.asarray(positions, dtype=float).ravel()
    r = np.asarray(returns, dtype=float).ravel()
    if p.shape != r.shape:
        raise BadInput(f"{p.size} positions but {r.size} returns; they must align bar by bar")
    if not (np.isfinite(p).all() and np.isfinite(r).all()):
        raise BadInput("positions and returns must be finite numbers (found NaN or inf)")
    return p, r
