"""Lookback windows: the model input of one prediction is the last L feature rows, flattened."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from bot.contracts import BadInput
from bot.core.features import WARMUP_BARS, build_features
from bot.core.targets import make_target

FloatArray = NDArray[np.floating[Any]]


def to_windows(features: FloatArray, lookback: int) -> FloatArray:
    """Windows of `lookback` consecutive rows, flattened oldest bar first.

    `features` is `(n, n_features)`; the result is `(n - lookback + 1, lookback * n_features)`, and
    row i holds rows `i .. i + lookback - 1`, matching `ModelBundle.input_names`
    (`f@t-(L-1)`, ..., `f@t`, bar by bar).
    """
    array = np.asarray(features, dtype=float)
    if array.ndim != 2:  # noqa: PLR2004 - a feature matrix is 2-D
        raise BadInput(f"features must be a 2-D array (rows x features), got shape {array.shape}")
    if lookback < 1:
        raise BadInput(f"lookback must be at least 1, got {lookback}")
    n_rows, n_features = array.shape
    if n_rows < lookback:
        raise BadInput(
            f"{n_rows} feature rows are fewer than the lookback of {lookback}; "
            "provide more bars of history"
        )
    windows = sliding_window_view(array, (lookback, n_features))[:, 0]
    return np.ascontiguousarray(windows.reshape(n_rows - lookback + 1, lookback * n_features))


def window_names(feature_names: tuple[str, ...], lookback: int) -> tuple[str, ...]:
    """Column names of `to_windows` output; identical to `ModelBundle.input_names`."""
    return tuple(
        f"{name}@t-{lag}" if lag else f"{name}@t"
        for lag in range(lookback - 1, -1, -1)
        for name in feature_names
    )


@dataclass(frozen=True, slots=True)
class Dataset:
    """Model inputs and labels of a bar history, one sample per complete window.

    Sample i is the window ending at bar `times[i]`. `y` is the target over the horizon (NaN for the
    last h samples, whose future is unknown: they are `X[n_labelled:]`), `next_returns` the simple
    return of the following bar (what a position held for one bar earns), `last_returns` the log
    return of the bar itself (the persistence baseline).
    """

    X: FloatArray
    y: FloatArray
    times: pd.DatetimeIndex
    next_returns: FloatArray
    last_returns: FloatArray
    n_labelled: int


def make_dataset(bars: pd.DataFrame, *, lookback: int, horizon: int, target: str) -> Dataset:
    """Features -> lookback windows -> targets, aligned on the bar at which each window ends."""
    features = build_features(bars).to_numpy()[WARMUP_BARS:]
    bad = ~np.isfinite(features).all(axis=1)
    if bad.any():
        when = bars.index[WARMUP_BARS + int(np.argmax(bad))]
        raise BadInput(f"features are not finite at {when}; check the bars around that time")
    X = to_windows(features, lookback)
    ends = np.arange(WARMUP_BARS + lookback - 1, len(bars))
    close = bars["close"].to_numpy(dtype=float)
    y = make_target(close, target=target, horizon=horizon)[ends]
    next_close = np.concatenate((close[1:], [np.nan]))
    prev_close = np.concatenate(([np.nan], close[:-1]))
    labelled = int(np.isfinite(y).sum())
    return Dataset(
        X=X,
        y=y,
        times=pd.DatetimeIndex(bars.index[ends]),
        next_returns=(next_close / close - 1.0)[ends],
        last_returns=np.log(close / prev_close)[ends],
        n_labelled=labelled,
    )
