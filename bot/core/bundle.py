"""What one trained model version is: the contract between training, artifacts and the predictor.

A `ModelBundle` is produced by training (`bot.core.training`), stored and verified by the artifact
registry (`bot.artifacts.registry`), and served by the predictor (`bot.serving.predictor`). The
fitted scaler is a step of `pipeline`, so scaling at inference is exactly scaling at training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.contracts import Target, model_key


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Action rule: `buy` when the score >= buy, `sell` when <= sell, otherwise `hold`.

    The score is the up-probability for `direction` models and the predicted log return for
    `return` models. Chosen on inner validation data only.
    """

    buy: float
    sell: float

    def codes(self, scores: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.int8]:
        """1 (buy), -1 (sell) or 0 (hold) per score, before any OOD override."""
        buy = scores >= self.buy
        sell = (scores <= self.sell) & ~buy
        return buy.astype(np.int8) - sell.astype(np.int8)


@dataclass(frozen=True, slots=True)
class OodSummary:
    """Training-distribution summary of the scaled, flattened inputs, for the OOD check."""

    mean: npt.NDArray[np.float64]
    precision: npt.NDArray[np.float64]  # inverse (regularised) covariance
    threshold: float  # squared Mahalanobis distance above which an input is out of distribution


@dataclass(frozen=True, slots=True)
class ModelBundle:
    symbol: str
    target: Target
    model_type: str
    version: str
    pipeline: Any  # a fitted sklearn.pipeline.Pipeline whose first step is the scaler
    feature_names: tuple[str, ...]  # per-bar features, in order
    lookback: int
    horizon: int
    interval: str
    thresholds: Thresholds
    train_start: datetime
    train_end: datetime
    ood: OodSummary
    metrics: dict[str, float | None] = field(default_factory=dict)
    library_versions: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    # the training inputs, in memory only (never stored): the compiled export is checked on them
    fit_windows: npt.NDArray[np.floating[Any]] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def key(self) -> str:
        return model_key(self.symbol, self.target, self.model_type)

    @property
    def input_names(self) -> tuple[str, ...]:
        """Names of the flattened input columns, oldest bar first: `rsi_14@t-2`, ..., `rsi_14@t`."""
        return tuple(
            f"{name}@t-{lag}" if lag else f"{name}@t"
            for lag in range(self.lookback - 1, -1, -1)
            for name in self.feature_names
        )
