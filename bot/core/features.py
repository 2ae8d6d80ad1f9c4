"""The feature set: named, ordered, strictly causal, and the same for training, backtest and live.

Every feature of row t is a function of the bars in a finite window ending at t (at most
`WARMUP_BARS + 1` bars). Exponential averages are therefore *truncated*: a fixed, normalised,
exponentially decaying kernel over a finite window, not an infinite recursion. This makes a live
row computed from the last `WARMUP_BARS + 1` bars equal to the row computed from the whole history,
which a recursive EMA would only approximate.

All features are computed with numpy on the bar arrays and assembled into one frame at the end:
a call costs well under a millisecond for a live window (figures in docs/forecasting.md). Rolling
means and standard deviations are exact two-pass computations over each window (no running sums,
which lose precision on prices ~1e4), and a constant window has a mean equal to its value and a
standard deviation of exactly 0, as in pandas.

Definitions (c = close, o = open, h = high, l = low, v = volume, r = 1-bar log return):

| name | definition |
|---|---|
| `ret_k` (k = 1, 2, 3, 5, 10, 20) | log(c_t / c_{t-k}) |
| `vol_k` (k = 5, 20) | sample standard deviation of r over the last k bars |
| `vol_ratio` | vol_5 / vol_20 |
| `rsi_14` | Wilder RSI in [0, 1]: avg up-move / (avg up + avg down), alpha = 1/14 |
| `macd`, `macd_signal`, `macd_hist` | EMA12 - EMA26 of c, its EMA9, their difference; / c_t |
| `bb_pctb_20` | Bollinger %b: (c - (SMA20 - 2 SD20)) / (4 SD20) |
| `bb_width_20` | 4 SD20 / SMA20 |
| `atr_14` | truncated Wilder average of the true range / c_t |
| `volume_z_20` | z-score of log(1 + v) over 20 bars (0: a constant window, or one without volume) |
| `range_ratio` | (h - l) / c |
| `body_ratio` | (c - o) / (h - l), 0 for a bar with h = l |
| `upper_wick`, `lower_wick` | (h - max(o, c)) / (h - l), (min(o, c) - l) / (h - l); 0 if h = l |
| `gap` | log(o_t / c_{t-1}) |
| `close_sma_50` | log(c_t / SMA50_t) |
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from bot.contracts import BadInput

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
_COLUMNS = pd.Index(list(FEATURE_NAMES))


def _windows(values: FloatArray, window: int) -> FloatArray:
    """Read-only `(n - window + 1, window)` view of the trailing windows, oldest value first.

    What `sliding_window_view(values, window)` returns, built directly: its argument checks cost
    ~35 us a call, more than the arithmetic on a live window, and a build makes a dozen views.
    """
    contiguous = np.ascontiguousarray(values, dtype=float)
    step = contiguous.itemsize
    shape = (contiguous.shape[0] - window + 1, window)
    view: FloatArray = np.ndarray(shape, dtype=float, buffer=contiguous, strides=(step, step))
    view.flags.writeable = False
    return view


@cache
def _kernel(alpha: float, window: int) -> FloatArray:
    """Normalised weights of a truncated EMA, oldest first (cached, read-only)."""
    weights = (1.0 - alpha) ** np.arange(window - 1, -1, -1, dtype=float)
    kernel: FloatArray = weights / weights.sum()
    kernel.flags.writeable = False
    return kernel


def truncated_ema(values: FloatArray, *, alpha: float, window: int) -> FloatArray:
    """Exponential average with decay `1 - alpha` over exactly `window` bars (NaN before)."""
    out = np.full(values.shape[0], np.nan)
    if values.shape[0] >= window:
        # einsum, not `@`: matmul takes another summation path for a single window, and the row
        # of a bar must not depend on how much history came with it (live row == history row).
        windows, kernel = _windows(values, window), _kernel(alpha, window)
        np.einsum("ij,j->i", windows, kernel, out=out[window - 1 :])
    return out


def _span_ema(values: FloatArray, span: int) -> FloatArray:
    return truncated_ema(values, alpha=2.0 / (span + 1), window=EMA_WINDOW_FACTOR * span)


def _wilder(values: FloatArray, period: int) -> FloatArray:
    return truncated_ema(values, alpha=1.0 / period, window=EMA_WINDOW_FACTOR * period)


def _lagged(values: FloatArray, k: int) -> FloatArray:
    """values shifted k bars later (NaN in the first k)."""
    out = np.full(values.shape[0], np.nan)
    if k < values.shape[0]:
        out[k:] = values[:-k]
    return out


def _change(values: FloatArray, k: int) -> FloatArray:
    """values_t - values_{t-k} (NaN in the first k)."""
    out = np.full(values.shape[0], np.nan)
    if k < values.shape[0]:
        np.subtract(values[k:], values[:-k], out=out[k:])
    return out


def _constant_ends(values: FloatArray, window: int) -> NDArray[np.intp]:
    """Positions of the bars that end a window of `window` equal values."""
    repeats = values[1:] == values[:-1]
    if np.count_nonzero(repeats) < window - 1:  # the usual case, decided in one pass
        return np.empty(0, dtype=np.intp)
    changes = np.concatenate(([0], np.cumsum(~repeats)))
    same = changes[window - 1 :] == changes[: values.shape[0] - window + 1]
    return np.flatnonzero(same) + (window - 1)


def _rolling_mean(values: FloatArray, window: int) -> FloatArray:
    """Trailing mean over `window` bars (NaN before, and for a window holding a NaN)."""
    return _rolling_mean_std(values, window, ddof=None)[0]


def _rolling_mean_std(
    values: FloatArray, window: int, *, ddof: int | None
) -> tuple[FloatArray, FloatArray]:
    """Trailing mean and standard deviation (divisor `window - ddof`) over `window` bars.

    Two passes per window, the mean and then the squared deviations from it, keep full precision
    (a running sum of squares loses digits on prices ~1e4). A window of equal values gets exactly
    that value as its mean, as pandas gives, so its standard deviation is exactly 0 too.
    `ddof=None` skips the standard deviation (returned all NaN).
    """
    mean, sd = np.full(values.shape[0], np.nan), np.full(values.shape[0], np.nan)
    if values.shape[0] < window:
        return mean, sd
    windows = _windows(values, window)
    np.divide(np.einsum("ij->i", windows), window, out=mean[window - 1 :])
    ends = _constant_ends(values, window)
    if ends.size:
        mean[ends] = values[ends]
    if ddof is not None:
        deviations = windows - mean[window - 1 :, None]
        squares = np.einsum("ij,ij->i", deviations, deviations)
        np.sqrt(np.divide(squares, window - ddof, out=squares), out=sd[window - 1 :])
    return mean, sd


def _safe_ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """numerator / denominator, 0 where the denominator is 0 (a flat bar or a constant window)."""
    zero = denominator == 0
    if not zero.any():
        result: FloatArray = numerator / denominator
        return result
    out = np.zeros_like(numerator, dtype=float)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    out[np.isnan(numerator) | np.isnan(denominator)] = np.nan
    return out


def _returns(close: FloatArray) -> dict[str, FloatArray]:
    log_close = np.log(close)
    out = {f"ret_{k}": _change(log_close, k) for k in RETURN_LAGS}
    _, out["vol_5"] = _rolling_mean_std(out["ret_1"], 5, ddof=1)
    _, out["vol_20"] = _rolling_mean_std(out["ret_1"], 20, ddof=1)
    out["vol_ratio"] = _safe_ratio(out["vol_5"], out["vol_20"])
    return out


def _rsi(close: FloatArray) -> FloatArray:
    delta = np.diff(close)
    # fmax ignores NaN: a move next to a missing close counts as no move.
    up = _wilder(np.fmax(delta, 0.0), 14)
    down = _wilder(np.fmax(0.0 - delta, 0.0), 14)
    total = up + down
    rsi = np.full(close.shape[0], 0.5)
    np.divide(up, total, out=rsi[1:], where=total > 0)
    rsi[1:][np.isnan(up)] = np.nan
    rsi[:1] = np.nan
    return rsi


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


def _bands(close: FloatArray) -> dict[str, FloatArray]:
    mean, sd = _rolling_mean_std(close, 20, ddof=0)
    return {
        "bb_pctb_20": _safe_ratio(close - (mean - 2 * sd), 4 * sd),
        "bb_width_20": 4 * sd / mean,
    }


def _atr(high: FloatArray, low: FloatArray, close: FloatArray) -> FloatArray:
    prev = _lagged(close, 1)
    true_range = np.fmax(high - low, np.fmax(np.abs(high - prev), np.abs(low - prev)))
    atr = np.concatenate(([np.nan], _wilder(true_range[1:], 14)))
    result: FloatArray = atr / close
    return result


def _volume_z(volume: FloatArray) -> FloatArray:
    log_volume = np.log1p(volume)
    mean, sd = _rolling_mean_std(log_volume, 20, ddof=1)
    # A constant window (sd ~ 0 up to rounding) carries no information: z = 0.
    sd = np.where(sd < 1e-12, 0.0, sd)  # noqa: PLR2004 - float round-off of a constant window
    z = _safe_ratio(log_volume - mean, sd)
    missing = np.isnan(volume)
    if missing.any():  # no volume in the window (an index, a gap in the data): neutral, z = 0
        seen = np.cumsum(missing)
        in_window = seen - np.concatenate((np.zeros(20, dtype=seen.dtype), seen[:-20]))[: len(seen)]
        z = np.where(in_window > 0, 0.0, z)
    return z


def _candle(o: FloatArray, h: FloatArray, lo: FloatArray, c: FloatArray) -> dict[str, FloatArray]:
    span = h - lo
    return {
        "range_ratio": span / c,
        "body_ratio": _safe_ratio(c - o, span),
        "upper_wick": _safe_ratio(h - np.maximum(o, c), span),
        "lower_wick": _safe_ratio(np.minimum(o, c) - lo, span),
        "gap": np.log(o / _lagged(c, 1)),
    }


def _bar_arrays(bars: pd.DataFrame) -> list[FloatArray]:
    """open, high, low, close, volume as float64 arrays (NaN for a missing value)."""
    missing = [name for name in BAR_COLUMNS if name not in bars.columns]
    if missing:
        raise BadInput(
            f"bars are missing columns {missing}; expected {list(BAR_COLUMNS)} "
            "(load them with bot.data.load_bars)"
        )
    return [_float_array(bars[name]) for name in BAR_COLUMNS]


def _float_array(column: pd.Series) -> FloatArray:
    try:
        values = column.to_numpy(dtype=float)
    except (TypeError, ValueError):  # a nullable dtype holding NA, or text
        try:
            values = column.to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError) as e:
            raise BadInput(f"bar column {column.name!r} is not numeric ({column.dtype})") from e
    return np.ascontiguousarray(values)


def _feature_matrix(
    o: FloatArray, h: FloatArray, lo: FloatArray, c: FloatArray, v: FloatArray
) -> FloatArray:
    """Features x bars: row i is the feature `FEATURE_NAMES[i]` of every bar."""
    columns = _returns(c)
    columns["rsi_14"] = _rsi(c)
    columns.update(_macd(c))
    columns.update(_bands(c))
    columns["atr_14"] = _atr(h, lo, c)
    columns["volume_z_20"] = _volume_z(v)
    columns.update(_candle(o, h, lo, c))
    columns["close_sma_50"] = np.log(c / _rolling_mean(c, 50))
    matrix = np.empty((len(FEATURE_NAMES), c.shape[0]))
    for row, name in enumerate(FEATURE_NAMES):
        matrix[row] = columns[name]
    return matrix


def _frame(matrix: FloatArray, index: pd.Index) -> pd.DataFrame:
    # The transposed view makes one float block laid out feature by feature, no copy. The
    # columns are a view of the shared index: renaming them in one frame leaves the others alone.
    return pd.DataFrame(matrix.T, index=index, columns=_COLUMNS.view(), copy=False)


def _columns_of(bars: FloatArray) -> list[FloatArray]:
    return [np.ascontiguousarray(bars[:, i], dtype=float) for i in range(len(BAR_COLUMNS))]


def feature_rows(bars: FloatArray) -> FloatArray:
    """`build_features` on a `(n, 5)` array of open, high, low, close, volume: `(n, features)`."""
    return np.ascontiguousarray(_feature_matrix(*_columns_of(bars)).T)


def complete_feature_rows(series: Sequence[FloatArray]) -> list[FloatArray]:
    """Rows `WARMUP_BARS:` of `feature_rows(s)` for each bar array `s`, in one numpy pass.

    A row from `WARMUP_BARS` on depends only on its own last `WARMUP_BARS + 1` bars, never on what
    precedes its series, so the series are concatenated and their features computed once, then
    cut: row for row equal (bit for bit) to each series computed alone, at the cost of about one
    series for a handful of live windows. A series of `WARMUP_BARS` bars or fewer has no row.
    """
    if not series:
        return []
    rows = feature_rows(np.concatenate(series))
    out, start = [], 0
    for bars in series:
        end = start + len(bars)
        out.append(rows[min(start + WARMUP_BARS, end) : end])
        start = end
    return out


def build_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Feature rows for every bar: same index, columns `FEATURE_NAMES`, NaN in warm-up rows."""
    return _frame(_feature_matrix(*_bar_arrays(bars)), bars.index)


def build_features_tail(bars: pd.DataFrame, rows: int) -> pd.DataFrame:
    """`build_features(bars).iloc[-rows:]`, computed from the last `WARMUP_BARS + rows` bars only.

    The live path's call: its cost depends on `rows`, not on the length of `bars`. All rows come
    back when `bars` is shorter than `rows`.
    """
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise BadInput(f"rows must be a positive integer, got {rows!r}")
    need = WARMUP_BARS + rows
    arrays = [array[-need:] for array in _bar_arrays(bars)]
    return _frame(_feature_matrix(*arrays)[:, -rows:], bars.index[-rows:])
