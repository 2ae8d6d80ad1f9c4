"""The `model_type` registry: one scikit-learn Pipeline (StandardScaler + estimator) per type.

| model_type | `direction` (classifier) | `return` (regressor) |
|---|---|---|
| `logreg` | LogisticRegression | - (refused) |
| `ridge` | RidgeClassifier, score = logistic(decision function) | Ridge |
| `rf` | RandomForestClassifier (small, seeded) | RandomForestRegressor |
| `hgb` | HistGradientBoostingClassifier (seeded) | HistGradientBoostingRegressor |

Every direction pipeline has `predict_proba`; the ridge "probability" is the logistic of its
decision function: an uncalibrated score in (0, 1), not a calibrated probability. The scaler is the
first step and is fitted with the estimator, on training data only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from bot.contracts import BadInput

FloatArray = NDArray[np.floating[Any]]
Factory = Callable[[int], Any]


class RidgeScoreClassifier(RidgeClassifier):  # type: ignore[misc]
    """RidgeClassifier with `predict_proba` = logistic of the decision function (uncalibrated)."""

    def predict_proba(self, X: FloatArray) -> FloatArray:
        up = expit(self.decision_function(X))
        return np.column_stack((1.0 - up, up))


def _forest(cls: type[Any]) -> Factory:
    return lambda seed: cls(
        n_estimators=60, max_depth=6, min_samples_leaf=20, max_features="sqrt", n_jobs=1,
        random_state=seed,
    )  # fmt: skip


def _boosting(cls: type[Any]) -> Factory:
    return lambda seed: cls(
        max_iter=40, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=40, max_bins=63,
        l2_regularization=1.0, early_stopping=False, random_state=seed,
    )  # fmt: skip


CLASSIFIERS: dict[str, Factory] = {
    "logreg": lambda seed: LogisticRegression(C=0.1, max_iter=500, random_state=seed),
    "ridge": lambda _seed: RidgeScoreClassifier(alpha=10.0),
    "rf": _forest(RandomForestClassifier),
    "hgb": _boosting(HistGradientBoostingClassifier),
}
REGRESSORS: dict[str, Factory] = {
    "ridge": lambda _seed: Ridge(alpha=10.0),
    "rf": _forest(RandomForestRegressor),
    "hgb": _boosting(HistGradientBoostingRegressor),
}
MODEL_TYPES: tuple[str, ...] = tuple(CLASSIFIERS)


def supported_model_types(target: str) -> tuple[str, ...]:
    return tuple(REGRESSORS) if target == "return" else tuple(CLASSIFIERS)


def supports(model_type: str, target: str) -> bool:
    return model_type in supported_model_types(target)


def check_model_type(model_type: str, target: str) -> None:
    """Raise `BadInput` naming the model types that fit `target` when the pair is not possible."""
    if model_type not in MODEL_TYPES:
        raise BadInput(f"unknown model type {model_type!r}; use one of {', '.join(MODEL_TYPES)}")
    if not supports(model_type, target):
        raise BadInput(
            f"model type {model_type!r} cannot predict the {target!r} target; "
            f"use one of {', '.join(supported_model_types(target))}"
        )


def make_pipeline(model_type: str, target: str, seed: int) -> Pipeline:
    """An unfitted Pipeline `[("scaler", StandardScaler()), ("model", estimator)]`."""
    check_model_type(model_type, target)
    table = REGRESSORS if target == "return" else CLASSIFIERS
    return Pipeline([("scaler", StandardScaler()), ("model", table[model_type](seed))])


def predict_scores(pipeline: Pipeline, X: FloatArray, target: str) -> FloatArray:
    """The score the thresholds act on: P(up) for `direction`, the predicted log return else."""
    if target == "direction":
        return np.asarray(pipeline.predict_proba(X)[:, 1], dtype=float)
    return np.asarray(pipeline.predict(X), dtype=float)
