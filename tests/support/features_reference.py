"""Frozen copy of the pandas-based `bot/core/features.py` (commit 235eddf), the reference for
parity.

`tests/core/test_features.py` checks that the numpy implementation in `bot/core/features.py` returns
the same values as this one. Do not edit it to follow a change of `bot.core.features`: a deliberate
change of a feature definition updates the golden files and the parity test instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

FloatArray = NDArray[np.floating[Any]]

RETURN_LAGS = (1, 2, 3, 5, 10, 20)
EMA_WINDOW_FACTOR = 3  # truncated EMA of span s uses the last 3 * s bars

FEATURE_NAMES: tuple[str, ...] = (
    *(f"ret_{k}" for k in RETURN_LAGS),
    "vol_5",
    "vol_20",
    "vol_ratio",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_pctb_20",
    "bb_width_20",
    "atr_14",
    "volume_z_20",
    "range_ratio",
    "body_ratio",
    "upper_wick",
    "lower_wick",
    "gap",
    "close_sma_50",
)

_MACD_SLOW_WINDOW = EMA_WINDOW_FACTOR * 26
_MACD_SIGNAL_WINDOW = EMA_WINDOW_FACTOR * 9
WARMUP_BARS: int = (_MACD_SLOW_WINDOW - 1) + (_MACD_SIGNAL_WINDOW - 1)
"""Bars of history before the first complete row: row `WARMUP_BARS` is the first without NaN."""

BAR_COLUMNS = ("open", "high", "low", "close", "volume")


def _kernel_average(values: FloatArray, weights: FloatArray) -> FloatArray:
    """Weighted average over a trailing window; `weights[-1]` applies to the newest value."""
    out = np.full(values.shape[0], np.nan)
    width = weights.shape[0]
    if values.shape[0] >= width:
        out[width - 1 :] = sliding_window_view(values, width) @ (weights / weights.sum())
    return out


def truncated_ema(values: FloatArray, *, alpha: float, window: int) -> FloatArray:
    """Exponential average with decay `1 - alpha` over exactly `window` bars (NaN before)."""
    weights = (1.0 - alpha) ** np.arange(window - 1, -1, -1, dtype=float)
    return _kernel_average(values, weights)


def _span_ema(values: FloatArray, span: int) -> FloatArray:
    return truncated_ema(values, alpha=2.0 / (span + 1), window=EMA_WINDOW_FACTOR * span)


def _wilder(values: FloatArray, period: int) -> FloatArray:
    return truncated_ema(values, alpha=1.0 / period, window=EMA_WINDOW_FACTOR * period)


def _safe_ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """numerator / denominator, 0 where the denominator is 0 (a flat bar or a constant window)."""
    out = np.zeros_like(numerator, dtype=float)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    out[np.isnan(numerator) | np.isnan(denominator)] = np.nan
    return out


def _returns_block(close: pd.Series) -> dict[str, pd.Series]:
    log_close = np.log(close)
    r1 = log_close.diff()
    out = {f"ret_{k}": log_close.diff(k) for k in RETURN_LAGS}
    out["vol_5"] = r1.rolling(5).std()
    out["vol_20"] = r1.rolling(20).std()
    out["vol_ratio"] = pd.Series(
        _safe_ratio(out["vol_5"].to_numpy(), out["vol_20"].to_numpy()), index=close.index
    )
    return out


def _rsi(close: FloatArray) -> FloatArray:
    delta = np.diff(close, prepend=np.nan)
    up = _wilder(np.where(delta > 0, delta, 0.0)[1:], 14)
    down = _wilder(np.where(delta < 0, -delta, 0.0)[1:], 14)
    rsi = np.where(up + down > 0, up / np.where(up + down > 0, up + down, 1.0), 0.5)
    rsi[np.isnan(up)] = np.nan
    return np.concatenate(([np.nan], rsi))


def _macd(close: FloatArray) -> dict[str, FloatArray]:
    line = _span_ema(close, 12) - _span_ema(close, 26)
    signal = np.full_like(line, np.nan)
    first = _MACD_SLOW_WINDOW - 1
    signal[first:] = _span_ema(line[first:], 9)
    return {
        "macd": line / close,
        "macd_signal": signal / close,
        "macd_hist": (line - signal) / close,
    }


def _bands(close: pd.Series) -> dict[str, FloatArray]:
    mean = close.rolling(20).mean().to_numpy()
    sd = close.rolling(20).std(ddof=0).to_numpy()
    c = close.to_numpy()
    return {
        "bb_pctb_20": _safe_ratio(c - (mean - 2 * sd), 4 * sd),
        "bb_width_20": 4 * sd / mean,
    }


def _atr(high: FloatArray, low: FloatArray, close: FloatArray) -> FloatArray:
    prev = np.concatenate(([np.nan], close[:-1]))
    true_range = np.fmax(high - low, np.fmax(np.abs(high - prev), np.abs(low - prev)))
    atr = np.concatenate(([np.nan], _wilder(true_range[1:], 14)))
    result: FloatArray = atr / close
    return result


def _volume_z(volume: pd.Series) -> FloatArray:
    log_volume = np.log1p(volume)
    mean = log_volume.rolling(20).mean().to_numpy()
    sd = log_volume.rolling(20).std().to_numpy()
    # A constant window (sd ~ 0 up to rounding) carries no information: z = 0.
    sd = np.where(sd < 1e-12, 0.0, sd)
    z = _safe_ratio(log_volume.to_numpy() - mean, sd)
    # a window without some volume (an index, a gap) is neutral: z = 0
    lacking = volume.isna().rolling(20, min_periods=1).sum().to_numpy() > 0
    return np.where(lacking, 0.0, z)


def _candle(bars: pd.DataFrame) -> dict[str, FloatArray]:
    o, h, lo, c = (bars[name].to_numpy() for name in ("open", "high", "low", "close"))
    span = h - lo
    prev_close = np.concatenate(([np.nan], c[:-1]))
    return {
        "range_ratio": span / c,
        "body_ratio": _safe_ratio(c - o, span),
        "upper_wick": _safe_ratio(h - np.maximum(o, c), span),
        "lower_wick": _safe_ratio(np.minimum(o, c) - lo, span),
        "gap": np.log(o / prev_close),
    }


def reference_features(bars: pd.DataFrame) -> pd.DataFrame:
    """The pandas implementation's feature rows for `bars`."""
    close_series = bars["close"].astype(float)
    close = close_series.to_numpy()
    columns: dict[str, object] = {}
    columns.update(_returns_block(close_series))
    columns["rsi_14"] = _rsi(close)
    columns.update(_macd(close))
    columns.update(_bands(close_series))
    columns["atr_14"] = _atr(bars["high"].to_numpy(float), bars["low"].to_numpy(float), close)
    columns["volume_z_20"] = _volume_z(bars["volume"].astype(float))
    columns.update(_candle(bars.astype(float)))
    columns["close_sma_50"] = np.log(close / close_series.rolling(50).mean().to_numpy())
    data = {name: np.asarray(columns[name], dtype=float) for name in FEATURE_NAMES}
    return pd.DataFrame(data, index=bars.index, columns=list(FEATURE_NAMES))
