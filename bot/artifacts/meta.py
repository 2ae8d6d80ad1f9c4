"""meta.json (everything of a ModelBundle but the pipeline) and the checks every bundle must pass.

The checks run when a bundle is published (BadInput) and again after a verified load
(IntegrityError): a pipeline without its fitted scaler, or whose shapes disagree with the bundle,
is never served.
"""

from __future__ import annotations

import io
import json
import math
import platform
from datetime import datetime
from typing import Any

import numpy as np

from bot.artifacts.format import FORMAT, META_FILE, MODEL_FILE, ArtifactIntegrityError, check_name
from bot.contracts import BadInput
from bot.core import ModelBundle, OodSummary, Thresholds

_TARGETS = ("direction", "return")


def meta_of(bundle: ModelBundle) -> bytes:
    """Everything of the bundle but the pipeline, as JSON (non-finite floats as strings)."""
    from bot.contracts import utcnow

    meta = {
        "format": FORMAT,
        "key": bundle.key,
        "symbol": bundle.symbol,
        "target": bundle.target,
        "model_type": bundle.model_type,
        "version": bundle.version,
        "feature_names": list(bundle.feature_names),
        "input_names": list(bundle.input_names),
        "lookback": bundle.lookback,
        "horizon": bundle.horizon,
        "interval": bundle.interval,
        "thresholds": {"buy": _num(bundle.thresholds.buy), "sell": _num(bundle.thresholds.sell)},
        "train_start": bundle.train_start.isoformat(),
        "train_end": bundle.train_end.isoformat(),
        "ood": {
            "threshold": _num(bundle.ood.threshold),
            "mean": np.asarray(bundle.ood.mean, dtype=np.float64).tolist(),
            "precision": np.asarray(bundle.ood.precision, dtype=np.float64).tolist(),
        },
        "metrics": {k: None if v is None else _num(v) for k, v in bundle.metrics.items()},
        "library_versions": {**bundle.library_versions, **runtime_versions()},
        "created_at": (bundle.created_at or utcnow()).isoformat(),
        "pipeline_steps": [
            [name, f"{type(step).__module__}.{type(step).__qualname__}"]
            for name, step in getattr(bundle.pipeline, "steps", [])
        ],
    }
    return json.dumps(meta, separators=(",", ":"), allow_nan=False).encode()


def bundle_from_meta(
    meta: Any, pipeline: Any, *, label: str, compiled: bool = False
) -> ModelBundle:
    """Rebuild and check the bundle; a malformed meta.json or pipeline is an integrity error.

    `compiled`: the bundle serves a compiled form and has no pipeline (`pipeline` is None)."""
    try:
        bundle = _bundle(meta, pipeline)
        check_bundle(bundle, pipeline=not compiled)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactIntegrityError(
            f"{label}: meta.json is incomplete or malformed ({exc!r}); re-publish the version",
            file=META_FILE,
        ) from exc
    except BadInput as exc:
        raise ArtifactIntegrityError(f"{label}: {exc}", file=MODEL_FILE) from exc
    return bundle


def _bundle(meta: dict[str, Any], pipeline: Any) -> ModelBundle:
    if meta["format"] != FORMAT:
        raise ValueError(f"meta format {meta['format']!r} is not {FORMAT}")
    ood = meta["ood"]
    created = meta.get("created_at")
    return ModelBundle(
        symbol=str(meta["symbol"]),
        target=meta["target"],
        model_type=str(meta["model_type"]),
        version=str(meta["version"]),
        pipeline=pipeline,
        feature_names=tuple(str(name) for name in meta["feature_names"]),
        lookback=int(meta["lookback"]),
        horizon=int(meta["horizon"]),
        interval=str(meta["interval"]),
        thresholds=Thresholds(float(meta["thresholds"]["buy"]), float(meta["thresholds"]["sell"])),
        train_start=datetime.fromisoformat(meta["train_start"]),
        train_end=datetime.fromisoformat(meta["train_end"]),
        ood=OodSummary(
            mean=np.asarray(ood["mean"], dtype=np.float64),
            precision=np.asarray(ood["precision"], dtype=np.float64),
            threshold=float(ood["threshold"]),
        ),
        metrics={k: None if v is None else float(v) for k, v in meta["metrics"].items()},
        library_versions={str(k): str(v) for k, v in meta["library_versions"].items()},
        created_at=datetime.fromisoformat(created) if created else None,
    )


def check_bundle(bundle: ModelBundle, *, pipeline: bool = True) -> None:
    """Refuse a bundle the predictor could not serve correctly (BadInput saying what is wrong)."""
    check_name(bundle.key, "model key")
    check_name(bundle.version, "version")
    if bundle.target not in _TARGETS:
        raise BadInput(f"target {bundle.target!r} is not one of {_TARGETS}")
    names = bundle.feature_names
    if not names or len(set(names)) != len(names):
        raise BadInput(f"feature names must be non-empty and unique, got {list(names)[:10]}")
    if bundle.lookback < 1 or bundle.horizon < 1:
        raise BadInput(
            f"lookback and horizon must be >= 1, got {bundle.lookback}, {bundle.horizon}"
        )
    if math.isnan(bundle.thresholds.buy) or math.isnan(bundle.thresholds.sell):
        raise BadInput("thresholds must be numbers, got NaN")
    n_inputs = bundle.lookback * len(names)
    _check_ood(bundle.ood, n_inputs)
    if pipeline:
        scaler_of(bundle.pipeline, n_inputs)


def _check_ood(ood: OodSummary, n_inputs: int) -> None:
    mean, precision = np.asarray(ood.mean), np.asarray(ood.precision)
    if mean.shape != (n_inputs,) or precision.shape != (n_inputs, n_inputs):
        raise BadInput(
            f"OOD summary shapes {mean.shape} and {precision.shape} do not match the "
            f"{n_inputs} inputs (lookback x features)"
        )
    if not (np.isfinite(mean).all() and np.isfinite(precision).all()):
        raise BadInput("the OOD summary holds NaN or infinite values")
    if math.isnan(ood.threshold) or ood.threshold <= 0:
        raise BadInput(f"the OOD threshold must be > 0, got {ood.threshold}")


def scaler_of(pipeline: Any, n_inputs: int) -> Any:
    """The fitted scaler that must open the pipeline, or BadInput saying what is missing."""
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(pipeline, Pipeline):
        raise BadInput(
            f"the model is a {type(pipeline).__name__}, not a scikit-learn Pipeline (scaler, ..., "
            "estimator): retrain it so that the fitted scaler travels with the model"
        )
    name, scaler = pipeline.steps[0]
    if len(pipeline.steps) < 2 or not isinstance(scaler, _scaler_types()):  # noqa: PLR2004
        raise BadInput(
            f"the pipeline has no scaler: its first step {name!r} is {type(scaler).__name__}; "
            "retrain with the fitted scaler as the first step of the pipeline"
        )
    try:
        check_is_fitted(scaler)
        check_is_fitted(pipeline.steps[-1][1])
    except NotFittedError as exc:
        raise BadInput("the pipeline's scaler or estimator is not fitted") from exc
    fitted_on = getattr(scaler, "n_features_in_", None)
    if fitted_on != n_inputs:
        raise BadInput(
            f"the scaler was fitted on {fitted_on} inputs but the bundle describes {n_inputs} "
            "(lookback x features); the bundle and its pipeline do not belong together"
        )
    return scaler


def _scaler_types() -> tuple[type, ...]:
    from sklearn import preprocessing

    return (
        preprocessing.StandardScaler,
        preprocessing.RobustScaler,
        preprocessing.MinMaxScaler,
        preprocessing.MaxAbsScaler,
        preprocessing.QuantileTransformer,
        preprocessing.PowerTransformer,
    )


def runtime_versions() -> dict[str, str]:
    """The versions that pickle (and must unpickle) the pipeline."""
    from importlib.metadata import version

    found = {"python": platform.python_version()}
    for package in ("scikit-learn", "numpy", "joblib", "scipy"):
        found[package] = version(package)
    return found


def _num(value: float) -> float | str:
    number = float(value)
    return number if math.isfinite(number) else str(number)


def pickle_pipeline(pipeline: Any) -> bytes:
    import joblib

    buffer = io.BytesIO()
    try:
        joblib.dump(pipeline, buffer)
    except Exception as exc:
        raise BadInput(f"the fitted pipeline cannot be serialised with joblib: {exc}") from exc
    return buffer.getvalue()
