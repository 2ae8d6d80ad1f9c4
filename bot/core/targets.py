"""Targets over a horizon of h bars, aligned with the bar at which the prediction is made."""

from __future__ import annotations

from typing import Any, get_args

import numpy as np
from numpy.typing import NDArray

from bot.contracts import BadInput, Target

FloatArray = NDArray[np.floating[Any]]
TARGETS: tuple[str, ...] = get_args(Target)


def forward_log_return(close: FloatArray, horizon: int) -> FloatArray:
    """log(c_{t+h} / c_t) for every bar t; NaN for the last h bars (their future is unknown)."""
    if horizon < 1:
        raise BadInput(f"horizon must be at least 1 bar, got {horizon}")
    log_close = np.log(np.asarray(close, dtype=float))
    out = np.full(log_close.shape[0], np.nan)
    if log_close.shape[0] > horizon:
        out[:-horizon] = log_close[horizon:] - log_close[:-horizon]
    return out


def neutral_score(target: str) -> float:
    """The score with no view either way: a 0.5 probability of up for `direction` models, a zero
    return for `return` models. Above it a model calls up; it is also the walk-forward's neutral
    threshold."""
    return 0.5 if target == "direction" else 0.0


def make_target(close: FloatArray, *, target: str, horizon: int) -> FloatArray:
    """`direction`: 1.0 if the forward log return over h bars is > 0, else 0.0 (NaN when unknown);
    `return`: the forward log return itself."""
    forward = forward_log_return(close, horizon)
    if target == "return":
        return forward
    if target == "direction":
        return np.where(np.isnan(forward), np.nan, (forward > 0).astype(float))
    raise BadInput(f"unknown target {target!r}; use one of {', '.join(TARGETS)}")


def check_target(target: str) -> Target:
    if target not in TARGETS:
        raise BadInput(f"unknown target {target!r}; use one of {', '.join(TARGETS)}")
    return target  # type: ignore[return-value]
