"""`train_model`: walk-forward evaluation, then the final fit on all data, as a `ModelBundle`.

The bundle carries what the predictor needs to reproduce training exactly (the fitted pipeline
with its scaler, feature names and order, lookback, horizon, thresholds) and what a reviewer needs
to trust it (training window, out-of-sample metrics, the training-distribution summary for the OOD
check, library versions). Versions are `YYYYMMDDTHHMMSSffffffZ-<6 hex>`: sortable by time, unique
per run.
"""

from __future__ import annotations

import hashlib
import platform
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from numpy.typing import NDArray
from sklearn.pipeline import Pipeline

from bot.core.bundle import ModelBundle, Thresholds
from bot.core.estimators import check_model_type, make_pipeline, predict_scores
from bot.core.evaluation import EvaluationReport, evaluate_dataset
from bot.core.features import FEATURE_NAMES
from bot.core.ood import ood_summary
from bot.core.planning import Combination
from bot.core.sequences import Dataset, make_dataset
from bot.core.targets import check_target
from bot.core.walkforward import WalkForwardConfig, choose_thresholds, effective_purge, inner_split

FloatArray = NDArray[np.floating[Any]]
BASELINE_KEYS = ("accuracy", "sharpe", "total_return")


@dataclass(frozen=True, slots=True)
class TrainResult:
    bundle: ModelBundle
    report: EvaluationReport


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "joblib": joblib.__version__,
    }


def new_version(key: str, now: datetime | None = None) -> str:
    """UTC timestamp to the microsecond plus 6 hex of a random hash: sortable and unique."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    digest = hashlib.sha256(f"{key}/{stamp}/{uuid.uuid4()}".encode()).hexdigest()[:6]
    return f"{stamp}-{digest}"


def final_fit(
    ds: Dataset, *, target: str, model_type: str, horizon: int, seed: int, cost_bps: float,
    config: WalkForwardConfig,
) -> tuple[Pipeline, Thresholds]:  # fmt: skip
    """Thresholds from the last inner validation block, then the pipeline refit on all samples."""
    n = ds.n_labelled
    X, y = ds.X[:n], ds.y[:n]
    fit, validation = inner_split(
        range(n), purge=effective_purge(config, horizon),
        validation_fraction=config.validation_fraction,
    )  # fmt: skip
    probe = make_pipeline(model_type, target, seed).fit(
        X[fit.start : fit.stop], y[fit.start : fit.stop]
    )
    thresholds = choose_thresholds(
        predict_scores(probe, X[validation.start : validation.stop], target),
        ds.next_returns[validation.start : validation.stop],
        target=target, cost_bps=cost_bps, allow_short=config.allow_short,
    )  # fmt: skip
    return make_pipeline(model_type, target, seed).fit(X, y), thresholds


def _bundle_metrics(report: EvaluationReport) -> dict[str, float | None]:
    out = dict(report.metrics)
    for name, values in report.baselines.items():
        out.update({f"baseline_{name}_{key}": values.get(key) for key in BASELINE_KEYS})
    return out


def train_model(
    bars: pd.DataFrame,
    *,
    symbol: str,
    target: str,
    model_type: str,
    lookback: int = 1,
    horizon: int = 1,
    interval: str = "1D",
    seed: int = 42,
    cost_bps: float = 1.0,
    config: WalkForwardConfig | None = None,
) -> TrainResult:
    """Evaluate walk-forward (out of sample), then fit on all data; `BadInput` on a bad request."""
    target = check_target(target)
    check_model_type(model_type, target)
    config = config or WalkForwardConfig()
    ds = make_dataset(bars, lookback=lookback, horizon=horizon, target=target)
    combination = Combination(symbol.upper(), target, model_type)
    report, _ = evaluate_dataset(
        ds, combination=combination, lookback=lookback, horizon=horizon, interval=interval,
        seed=seed, cost_bps=cost_bps, config=config,
    )  # fmt: skip
    pipeline, thresholds = final_fit(
        ds, target=target, model_type=model_type, horizon=horizon, seed=seed,
        cost_bps=cost_bps, config=config,
    )  # fmt: skip
    scaled = pipeline.named_steps["scaler"].transform(ds.X[: ds.n_labelled])
    bundle = ModelBundle(
        symbol=combination.symbol, target=target, model_type=model_type,
        version=new_version(combination.key), pipeline=pipeline, feature_names=FEATURE_NAMES,
        lookback=lookback, horizon=horizon, interval=interval, thresholds=thresholds,
        train_start=ds.times[0].to_pydatetime(), train_end=bars.index[-1].to_pydatetime(),
        ood=ood_summary(scaled), metrics=_bundle_metrics(report),
        library_versions=library_versions(), created_at=datetime.now(UTC),
        fit_windows=ds.X[: ds.n_labelled],
    )  # fmt: skip
    return TrainResult(bundle=bundle, report=report)
