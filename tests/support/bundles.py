"""Real, small fitted model bundles for the artifact and predictor tests (no mocks)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from bot.core import ModelBundle, OodSummary, Thresholds

FEATURES = ("ret_1", "ret_5", "rsi_14")


def training_inputs(lookback: int, n_features: int, seed: int = 0, n: int = 300) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(loc=0.5, scale=2.0, size=(n, lookback * n_features))


def ood_summary(pipeline: Pipeline, X: np.ndarray) -> OodSummary:
    """Mean and regularised precision of the scaled inputs; threshold = 99.9 % of training."""
    Z = pipeline[0].transform(X)
    mean = Z.mean(axis=0)
    cov = np.cov(Z, rowvar=False) + 1e-6 * np.eye(Z.shape[1])
    precision = np.linalg.inv(cov)
    d = Z - mean
    d2 = np.einsum("ij,jk,ik->i", d, precision, d)
    return OodSummary(mean=mean, precision=precision, threshold=float(np.quantile(d2, 0.999)) * 1.5)


def make_bundle(
    *,
    version: str = "20260101T000000Z-0001",
    symbol: str = "SPX",
    target: str = "direction",
    lookback: int = 2,
    features: tuple[str, ...] = FEATURES,
    seed: int = 0,
    pipeline: Any = None,
    thresholds: Thresholds | None = None,
) -> ModelBundle:
    X = training_inputs(lookback, len(features), seed)
    rng = np.random.default_rng(seed + 1)
    signal = X[:, -1] - 0.5 + 0.5 * rng.normal(size=len(X))
    if pipeline is None:
        estimator = LogisticRegression() if target == "direction" else Ridge()
        pipeline = Pipeline([("scaler", StandardScaler()), ("model", estimator)])
    y = (signal > 0).astype(int) if target == "direction" else signal / 100
    pipeline.fit(X, y)
    default = Thresholds(0.55, 0.45) if target == "direction" else Thresholds(0.002, -0.002)
    return ModelBundle(
        symbol=symbol,
        target=target,  # type: ignore[arg-type]
        model_type="logreg" if target == "direction" else "ridge",
        version=version,
        pipeline=pipeline,
        feature_names=features,
        lookback=lookback,
        horizon=1,
        interval="1D",
        thresholds=thresholds or default,
        train_start=datetime(2020, 1, 1, tzinfo=UTC),
        train_end=datetime(2024, 12, 31, tzinfo=UTC),
        ood=ood_summary(pipeline, X) if hasattr(pipeline[0], "mean_") else _identity_ood(X),
        metrics={"accuracy": 0.61, "roc_auc": float("nan"), "sharpe": None},
        library_versions={"trained_by": "tests"},
        created_at=datetime(2026, 1, 1, 3, 0, tzinfo=UTC),
        fit_windows=X,
    )


def _identity_ood(X: np.ndarray) -> OodSummary:
    n = X.shape[1]
    return OodSummary(mean=np.zeros(n), precision=np.eye(n), threshold=100.0)


class SideEffect:
    """Unpickling this creates `marker` (a directory): proof that a pickle was loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (self.marker,))
