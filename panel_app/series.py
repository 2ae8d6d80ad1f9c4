"""Time series the charts draw: live equity next to the backtest's, drawdowns, latency percentiles.

Pure functions over the frames `panel_app.queries` returns. Returns are simple per-bar returns and
equity compounds them from 1, as `bot.core.scores.equity_curve` does for the backtest.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta

import numpy as np
import pandas as pd

EMPTY_EQUITY = pd.DataFrame(columns=["time", "equity", "drawdown"])
LATENCY_QUANTILES = (0.5, 0.95, 0.99)
MAX_BUCKETS = 120
BUCKETS = (
    ("10ms", timedelta(milliseconds=10)),
    ("100ms", timedelta(milliseconds=100)),  # a replay emits a burst within a second
    ("1s", timedelta(seconds=1)),
    ("10s", timedelta(seconds=10)),
    ("1min", timedelta(minutes=1)),
    ("5min", timedelta(minutes=5)),
    ("15min", timedelta(minutes=15)),
    ("1h", timedelta(hours=1)),
    ("6h", timedelta(hours=6)),
    ("1D", timedelta(days=1)),
    ("7D", timedelta(days=7)),
)


@dataclass(frozen=True, slots=True)
class EquityPair:
    """The live and backtest curves of one model over the same period (both start at 1)."""

    model_key: str
    live: pd.DataFrame  # time, equity, drawdown
    backtest: pd.DataFrame  # time, equity, drawdown
    backtest_note: str
    # the batch path over exactly the live bars, with costs (panel_app.live_period)
    live_period: pd.DataFrame = field(default_factory=EMPTY_EQUITY.copy)


def compound(times: pd.Series, returns: pd.Series) -> pd.DataFrame:
    """Equity from 1 and the drawdown under it (0 at a peak, negative below it)."""
    equity = np.cumprod(1.0 + returns.to_numpy(dtype=float))
    peaks = np.maximum.accumulate(np.concatenate(([1.0], equity)))[1:]
    return pd.DataFrame(
        {"time": times.to_numpy(), "equity": equity, "drawdown": equity / peaks - 1.0}
    )


def equity_pair(model_key: str, live_returns: pd.DataFrame, backtest: pd.DataFrame) -> EquityPair:
    """Live equity of one model over the backtest's equity for the same calendar period.

    When the backtest does not cover the live period (live signals after the training data), the
    whole backtest curve is drawn instead and the note says so.
    """
    mine = live_returns[live_returns["model_key"] == model_key].sort_values("bar_time")
    live = compound(mine["bar_time"], mine["strategy_return"])
    if live.empty:
        return EquityPair(
            model_key,
            live,
            compound(backtest["time"], backtest["strategy_return"]),
            "no live outcomes yet",
        )
    start, end = live["time"].iloc[0], live["time"].iloc[-1]
    overlap = backtest[(backtest["time"] >= start) & (backtest["time"] <= end)]
    if overlap.empty:
        whole = compound(backtest["time"], backtest["strategy_return"])
        note = "backtest does not cover the live period: its whole curve is shown"
        return EquityPair(model_key, live, whole, note if not whole.empty else "no backtest curve")
    return EquityPair(
        model_key,
        live,
        compound(overlap["time"], overlap["strategy_return"]),
        f"same period: {start:%Y-%m-%d} to {end:%Y-%m-%d}",
    )


def with_live_period(pair: EquityPair, returns: pd.DataFrame | None) -> EquityPair:
    """`pair` with the batch path's curve over the live bars (`bar_time, strategy_return`)."""
    if returns is None or returns.empty:
        return pair
    ordered = returns.sort_values("bar_time")
    return replace(pair, live_period=compound(ordered["bar_time"], ordered["strategy_return"]))


def bucket_for(span: timedelta) -> str:
    """The smallest bucket that keeps a latency chart at or under `MAX_BUCKETS` points."""
    for alias, width in BUCKETS:
        if span / width <= MAX_BUCKETS:
            return alias
    return BUCKETS[-1][0]


def latency_percentiles(latencies: pd.DataFrame) -> pd.DataFrame:
    """p50/p95/p99 of `latency_ms` per time bucket of `emitted_at` (`time, p50, p95, p99, n`)."""
    columns = ["time", "p50", "p95", "p99", "n"]
    if latencies.empty:
        return pd.DataFrame(columns=columns)
    span = latencies["emitted_at"].max() - latencies["emitted_at"].min()
    grouped = latencies.groupby(latencies["emitted_at"].dt.floor(bucket_for(span)))["latency_ms"]
    frame = pd.DataFrame({"n": grouped.size()})
    for quantile, name in zip(LATENCY_QUANTILES, ("p50", "p95", "p99"), strict=True):
        frame[name] = grouped.quantile(quantile)
    return frame.rename_axis("time").reset_index()[columns]


def latency_summary(latencies: pd.DataFrame) -> dict[str, float]:
    """p50/p95/p99 and the count over the whole window."""
    values = latencies["latency_ms"].to_numpy(dtype=float)
    if values.size == 0:
        return {}
    p50, p95, p99 = np.quantile(values, LATENCY_QUANTILES)
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "n": float(values.size)}
