"""Lookback windows: the model input of one prediction is the last L feature rows, flattened."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from bot.errors import BadInput

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
