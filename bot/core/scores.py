"""Metric functions over plain arrays, shared by the walk-forward evaluation and live metrics.

Every function takes numpy arrays (or sequences) and returns a float, or `None` when the metric is
undefined for the input (no samples, a single class, zero variance): `None` is stored as JSON
`null`, never as a made-up number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

FloatArray = NDArray[np.floating[Any]]

Z_95 = 1.959963984540054
ArrayLike = NDArray[Any] | Sequence[float]


def _array(values: ArrayLike) -> FloatArray:
    return np.asarray(values, dtype=float).ravel()


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float | None:
    true, pred = _array(y_true), _array(y_pred)
    return float(np.mean(np.abs(true - pred))) if true.size else None


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float | None:
    true, pred = _array(y_true), _array(y_pred)
    return float(np.sqrt(np.mean((true - pred) ** 2))) if true.size else None


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (95 % by default); `None` for n = 0."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def directional_accuracy(actual_up: ArrayLike, predicted_up: ArrayLike) -> dict[str, float | None]:
    """Share of correct up/down calls with its Wilson 95 % interval."""
    actual, predicted = _array(actual_up) > 0, _array(predicted_up) > 0
    n = int(actual.size)
    hits = int(np.sum(actual == predicted))
    interval = wilson_interval(hits, n)
    return {
        "accuracy": hits / n if n else None,
        "accuracy_ci_low": interval[0] if interval else None,
        "accuracy_ci_high": interval[1] if interval else None,
        "n": float(n),
    }


def classification_metrics(
    actual_up: ArrayLike, predicted_up: ArrayLike, probability: ArrayLike | None = None
) -> dict[str, float | None]:
    """Accuracy (+ CI), precision, recall and F1 of the up class, and ROC AUC of the score."""
    actual = (_array(actual_up) > 0).astype(int)
    predicted = (_array(predicted_up) > 0).astype(int)
    out = directional_accuracy(actual, predicted)
    if actual.size == 0:
        return out | {"precision": None, "recall": None, "f1": None, "roc_auc": None}
    out["precision"] = float(precision_score(actual, predicted, zero_division=0))
    out["recall"] = float(recall_score(actual, predicted, zero_division=0))
    out["f1"] = float(f1_score(actual, predicted, zero_division=0))
    out["roc_auc"] = roc_auc(actual, probability) if probability is not None else None
    return out


def roc_auc(actual_up: ArrayLike, score: ArrayLike) -> float | None:
    actual = (_array(actual_up) > 0).astype(int)
    if actual.size == 0 or actual.min() == actual.max():
        return None
    return float(roc_auc_score(actual, _array(score)))


def regression_metrics(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float | None]:
    """MAE, RMSE and the directional accuracy (+ CI) of the predicted sign."""
    true, pred = _array(y_true), _array(y_pred)
    return {"mae": mae(true, pred), "rmse": rmse(true, pred)} | directional_accuracy(
        true > 0, pred > 0
    )


def sharpe(returns: ArrayLike, periods_per_year: float) -> float | None:
    """Annualised Sharpe ratio of per-bar returns (risk-free rate 0, sample std)."""
    r = _array(returns)
    if r.size < 2:  # noqa: PLR2004 - a sample std needs two values
        return None
    sd = float(np.std(r, ddof=1))
    return _finite(float(np.mean(r)) / sd * math.sqrt(periods_per_year)) if sd > 0 else None


def sortino(returns: ArrayLike, periods_per_year: float) -> float | None:
    """Annualised Sortino ratio: mean over the downside deviation sqrt(mean(min(r, 0)^2))."""
    r = _array(returns)
    if r.size == 0:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    return _finite(float(np.mean(r)) / downside * math.sqrt(periods_per_year)) if downside else None


def equity_curve(returns: ArrayLike) -> FloatArray:
    """Compounded equity after each bar, starting from 1."""
    return np.cumprod(1.0 + _array(returns))


def max_drawdown(equity: ArrayLike) -> float | None:
    """Largest peak-to-trough loss as a positive fraction; the starting 1 counts as a peak."""
    e = _array(equity)
    if e.size == 0:
        return None
    peaks = np.maximum.accumulate(np.concatenate(([1.0], e)))[1:]
    return float(np.max(1.0 - e / peaks))


def cagr(equity: ArrayLike, periods_per_year: float) -> float | None:
    """Compound annual growth rate of an equity curve that started at 1, one point per bar."""
    e = _array(equity)
    if e.size == 0 or e[-1] <= 0:
        return None if e.size == 0 else -1.0
    return _finite(float(e[-1] ** (periods_per_year / e.size) - 1.0))


def exposure(positions: ArrayLike) -> float | None:
    """Share of bars with an open position."""
    p = _array(positions)
    return float(np.mean(p != 0)) if p.size else None


def profit_factor(trade_returns: ArrayLike) -> float | None:
    """Gross profit over gross loss of closed and open trades; `None` without a losing trade."""
    t = _array(trade_returns)
    loss = float(-t[t < 0].sum())
    return float(t[t > 0].sum()) / loss if loss > 0 else None


def win_rate(trade_returns: ArrayLike) -> float | None:
    t = _array(trade_returns)
    return float(np.mean(t > 0)) if t.size else None
