"""Inference: verified champions, validated inputs, the saved scaler, a prediction with an OOD flag.

Every model input is a window of `lookback` feature rows flattened oldest bar first (the layout of
`bot.core.sequences.to_windows` and `ModelBundle.input_names`). Inputs are refused with `BadInput`,
never guessed at: wrong shape or lookback, wrong feature names or order, NaN or infinite values. A
served model is one that verified (checksums and signature) and whose pipeline opens with its fitted
scaler. The input is out of distribution (`ood`) when the squared Mahalanobis distance of the scaled
window to the training inputs exceeds the bundle's threshold; the action is then `hold`.

Runtimes (`ITFF_SERVING_RUNTIME`): `compiled` (the default) serves the pickle-free compiled form of
each version (`bot.artifacts.compiled`: the scaler as plain arrays, ONNX Runtime or treelite for the
model) and never unpickles; a version published without a compiled form is then served through
scikit-learn, flagged in `itff_serving_sklearn_models`, with a warning. `sklearn` unpickles
the verified joblib pipeline (the reference path, for benchmarks and comparisons).

Thread-safe: loads and swaps happen under a lock, predictions read immutable served models, so the
consumer may call it from many worker threads (`asyncio.to_thread`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from prometheus_client import Gauge

from bot.artifacts import ArtifactRegistry, NoCompiledForm
from bot.contracts import Action, BadInput, IntegrityError, NotFound, Target
from bot.core import ModelBundle, ood_distances
from bot.runtime import get_logger

FloatArray = NDArray[np.float64]
Runtime = Literal["compiled", "sklearn"]
log = get_logger(__name__)
SKLEARN_FALLBACK = Gauge(
    "itff_serving_sklearn_models",
    "1 while the key's served version has no compiled form and is served through scikit-learn "
    "(unpickled) although the compiled runtime is configured; 0 once it is served compiled",
    ["model_key"],
)


@dataclass(frozen=True, slots=True)
class Prediction:
    model_key: str
    model_version: str
    target: Target
    prediction: float  # direction: 1.0 (up) or 0.0; return: the predicted log return
    probability: float | None  # direction: P(up); return: None
    action: Action
    ood: bool
    ood_distance: float  # squared Mahalanobis distance of the scaled input
    score: float  # what the thresholds act on: P(up) (direction) or the predicted log return
    buy_threshold: float  # action = buy when score >= buy_threshold (and not ood)
    sell_threshold: float  # action = sell when score <= sell_threshold (and not buy, not ood)


@dataclass(frozen=True, slots=True)
class _Served:
    """A champion ready to serve: its bundle and the two steps of each prediction."""

    bundle: ModelBundle
    scale: Callable[[FloatArray], FloatArray]  # windows -> scaled windows (the OOD input)
    score: Callable[[FloatArray], FloatArray]  # scaled windows -> P(up) or predicted return
    runtime: Runtime

    @property
    def n_inputs(self) -> int:
        return self.bundle.lookback * len(self.bundle.feature_names)


class Predictor:
    """Serves the verified champions of an `ArtifactRegistry` (loaded once, cached)."""

    def __init__(self, registry: ArtifactRegistry, runtime: Runtime = "compiled") -> None:
        self.registry = registry
        self.runtime = runtime
        self._served: dict[str, _Served] = {}
        self._lock = threading.Lock()

    # ---- models --------------------------------------------------------------------------

    def champion_keys(self, symbol: str) -> list[str]:
        """Keys (`{symbol}-{target}-{model_type}`) of the symbol's champions, from the registry."""
        wanted = symbol.upper()
        keys = []
        for key in self.registry.keys():  # noqa: SIM118 - a registry, not a dict
            if _symbol_of(key) != wanted:
                continue
            try:
                if self.registry.champion(key):
                    keys.append(key)
            except IntegrityError as exc:
                log.error("champion pointer unreadable; key skipped", model_key=key, error=str(exc))
        return keys

    def bundle(self, key: str) -> ModelBundle:
        """The bundle served for `key` (the verified champion, loaded on first use)."""
        return self._get(key).bundle

    def runtime_of(self, key: str) -> Runtime:
        """The runtime that serves `key` (`sklearn` for a version without a compiled form)."""
        return self._get(key).runtime

    def served_versions(self) -> dict[str, str]:
        return {key: served.bundle.version for key, served in self._served.items()}

    def reload(self, key: str) -> ModelBundle:
        """Verify and load the current champion of `key`, then swap it in.

        On any failure the previously served version keeps serving and the error is raised.
        """
        with self._lock:
            served = self._load(key)
            self._served[key] = served
        return served.bundle

    def refresh(self) -> dict[str, str]:
        """Reload every served key whose champion pointer moved; the new versions by key."""
        changed = {}
        for key, version in self.served_versions().items():
            champion = self.registry.champion(key)
            if champion and champion != version:
                changed[key] = self.reload(key).version
        return changed

    # ---- predictions ---------------------------------------------------------------------

    def predict_bars(self, symbol: str, bars: pd.DataFrame) -> list[Prediction]:
        """Every champion of `symbol` on the last `lookback` feature rows of `bars`."""
        from bot.core import WARMUP_BARS, build_features

        keys = self.champion_keys(symbol)
        if not keys:
            raise NotFound(
                f"no champion model for {symbol.upper()}: train one (`itff pipeline run`) or fetch "
                "it (`itff artifacts fetch`)"
            )
        if not isinstance(bars, pd.DataFrame):
            raise BadInput(f"bars must be a pandas DataFrame, got {type(bars).__name__}")
        features = build_features(bars)
        predictions = []
        for key in keys:
            served = self._get(key)
            window = _last_window(features, served.bundle, WARMUP_BARS)
            predictions.extend(_predict(served, window))
        return predictions

    def predict_windows(self, key: str, windows: Any) -> list[Prediction]:
        """Batched: `windows` is `(n, lookback * n_features)` (or `(n, lookback, n_features)`)."""
        served = self._get(key)
        return _predict(served, _check_windows(windows, served.bundle))

    def predict_rows(self, key: str, rows: pd.DataFrame) -> list[Prediction]:
        """Named inputs: per-bar rows with columns `feature_names` (one prediction per complete
        window of `lookback` consecutive rows), or flattened rows with columns `input_names`."""
        served = self._get(key)
        return _predict(served, _rows_to_windows(rows, served.bundle))

    def _get(self, key: str) -> _Served:
        served = self._served.get(key)
        if served is not None:
            return served
        with self._lock:
            served = self._served.get(key)
            if served is None:
                served = self._load(key)
                self._served[key] = served
            return served

    def _load(self, key: str) -> _Served:
        if self.runtime == "compiled":
            try:
                compiled = self.registry.load_compiled(key)
            except NoCompiledForm as exc:
                log.warning("served through scikit-learn: no compiled form", error=str(exc))
                SKLEARN_FALLBACK.labels(key).set(1)
            else:
                SKLEARN_FALLBACK.labels(key).set(0)
                scorer = compiled.scorer
                return _Served(compiled.bundle, scorer.scaled, scorer.scores, "compiled")
        return _prepare(self.registry.load(key))


def _prepare(bundle: ModelBundle) -> _Served:
    """Split the verified pipeline into scaler and head and check the head can score.

    Finiteness and shape were checked by `_check_windows`/`_rows_to_windows` and the estimators
    were verified at load, so scikit-learn's own per-call checks (finiteness, parameter
    validation) are skipped: for one window they cost more than the arithmetic.
    """
    from sklearn import config_context

    pipeline = bundle.pipeline
    # the estimator itself when it directly follows the scaler: a sliced Pipeline re-checks
    # fittedness on every call, which costs more than a one-row prediction
    head = pipeline.steps[1][1] if len(pipeline.steps) == 2 else pipeline[1:]  # noqa: PLR2004
    up_column = -1
    if bundle.target == "direction":
        classes = list(getattr(pipeline, "classes_", []))
        if 1 not in classes or not hasattr(pipeline, "predict_proba"):
            raise IntegrityError(
                f"{bundle.key}/{bundle.version}: a direction model must be a classifier with "
                f"predict_proba over classes 0/1, got classes {classes}; retrain it"
            )
        up_column = classes.index(1)
    scaler = pipeline.steps[0][1]
    fast = {"assume_finite": True, "skip_parameter_validation": True}

    def scale(windows: FloatArray) -> FloatArray:
        with config_context(**fast):
            return np.asarray(scaler.transform(windows), dtype=np.float64)

    def score(scaled: FloatArray) -> FloatArray:
        with config_context(**fast):
            if bundle.target == "direction":
                return np.asarray(head.predict_proba(scaled), dtype=np.float64)[:, up_column]
            return np.asarray(head.predict(scaled), dtype=np.float64).reshape(-1)

    return _Served(bundle, scale, score, "sklearn")


def _scores(served: _Served, windows: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Scaled inputs and scores."""
    scaled = served.scale(windows)
    return scaled, served.score(scaled)


def _predict(served: _Served, windows: FloatArray) -> list[Prediction]:
    bundle = served.bundle
    key, version, target = bundle.key, bundle.version, bundle.target
    scaled, scores = _scores(served, windows)
    distances = ood_distances(scaled, bundle.ood.mean, bundle.ood.precision)
    ood = (distances > bundle.ood.threshold).tolist()
    score_list = scores.tolist()
    actions = _actions(score_list, bundle, ood)
    if target == "direction":
        values = [1.0 if p > 0.5 else 0.0 for p in score_list]  # noqa: PLR2004 - argmax of 2
        probabilities: list[float | None] = list(score_list)
    else:
        values, probabilities = score_list, [None] * len(score_list)
    buy, sell = bundle.thresholds.buy, bundle.thresholds.sell
    rows = zip(values, probabilities, actions, ood, distances.tolist(), score_list, strict=True)
    return [
        Prediction(
            key, version, target, value, probability, action, out, distance, score, buy, sell
        )
        for value, probability, action, out, distance, score in rows
    ]


def _actions(scores: list[float], bundle: ModelBundle, ood: list[bool]) -> list[Action]:
    """`Thresholds.codes` as actions, held when ood (in Python: a batch holds a few rows)."""
    buy, sell = bundle.thresholds.buy, bundle.thresholds.sell
    return [
        "hold" if out else "buy" if score >= buy else "sell" if score <= sell else "hold"
        for score, out in zip(scores, ood, strict=True)
    ]


# ---- input validation ------------------------------------------------------------------------


def _check_windows(windows: Any, bundle: ModelBundle) -> FloatArray:
    if (  # the consumer's call: flat float64 windows of the right width, checked in one pass
        type(windows) is np.ndarray
        and windows.dtype == np.float64
        and windows.ndim == 2  # noqa: PLR2004
        and windows.shape[1] == bundle.lookback * len(bundle.feature_names)
        and len(windows)
        and np.isfinite(windows).all()
    ):
        return windows
    array = _numeric(windows, "windows")
    n_features = len(bundle.feature_names)
    if array.ndim == 3:  # noqa: PLR2004 - (n, lookback, features)
        if array.shape[1:] != (bundle.lookback, n_features):
            raise BadInput(
                f"{bundle.key} needs windows of {bundle.lookback} bars x {n_features} features, "
                f"got {array.shape[1]} bars x {array.shape[2]} features"
            )
        array = array.reshape(array.shape[0], -1)
    if array.ndim != 2:  # noqa: PLR2004 - (n, lookback * features)
        raise BadInput(
            f"windows must be 2-D (n, lookback x features) = (n, {bundle.lookback * n_features}), "
            f"got shape {array.shape}"
        )
    _check_width(array.shape[1], bundle)
    return _finite(array, lambda: bundle.input_names)


def _check_width(width: int, bundle: ModelBundle) -> None:
    n_features = len(bundle.feature_names)
    expected = bundle.lookback * n_features
    if width == expected:
        return
    bars = f"{width // n_features} bars" if width % n_features == 0 else "a partial bar"
    raise BadInput(
        f"{bundle.key} needs {expected} values per window (lookback {bundle.lookback} x "
        f"{n_features} features), got {width} ({bars}); send exactly {bundle.lookback} bars"
    )


def _rows_to_windows(rows: Any, bundle: ModelBundle) -> FloatArray:
    from bot.core import to_windows

    if not isinstance(rows, pd.DataFrame):
        raise BadInput(f"rows must be a pandas DataFrame, got {type(rows).__name__}")
    columns = tuple(str(column) for column in rows.columns)
    if columns == bundle.input_names:
        return _finite(_numeric(rows, "rows"), lambda: bundle.input_names)
    _check_names(columns, bundle)
    values = _finite(_numeric(rows, "rows"), lambda: bundle.feature_names)
    if len(values) < bundle.lookback:
        raise BadInput(
            f"{bundle.key} needs {bundle.lookback} consecutive feature rows (its lookback), "
            f"got {len(values)}"
        )
    return np.asarray(to_windows(values, bundle.lookback), dtype=np.float64)


def _check_names(columns: tuple[str, ...], bundle: ModelBundle) -> None:
    if columns == bundle.feature_names:
        return
    for expected in (bundle.feature_names, bundle.input_names):
        if sorted(columns) == sorted(expected):
            raise BadInput(
                f"feature columns are in the wrong order for {bundle.key}: expected "
                f"{list(expected)}, got {list(columns)}"
            )
    missing = [name for name in bundle.feature_names if name not in columns]
    unexpected = [name for name in columns if name not in bundle.feature_names]
    raise BadInput(
        f"feature columns do not match {bundle.key}: missing {missing}, unexpected {unexpected}; "
        f"expected exactly {list(bundle.feature_names)} in this order"
    )


def _numeric(values: Any, what: str) -> FloatArray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{what} must hold numbers only ({exc})") from exc


def _finite(array: FloatArray, names: Callable[[], tuple[str, ...]]) -> FloatArray:
    if len(array) == 0:
        raise BadInput("no input rows: send at least one window")
    bad = ~np.isfinite(array)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        value = array[row, column]
        raise BadInput(
            f"input row {row}, {names()[column]!r} is {value}; inputs must be finite numbers "
            f"({int(bad.sum())} non-finite values in total)"
        )
    return array


def _last_window(features: pd.DataFrame, bundle: ModelBundle, warmup: int) -> FloatArray:
    missing = [name for name in bundle.feature_names if name not in features.columns]
    if missing:
        raise IntegrityError(
            f"{bundle.key}/{bundle.version} was trained on features {missing} that this version "
            "of bot.core.features does not build; retrain the model"
        )
    needed = warmup + bundle.lookback
    if len(features) < needed:
        raise BadInput(
            f"{len(features)} bars are too few for {bundle.key}: it needs at least {needed} "
            f"(feature warm-up {warmup} + lookback {bundle.lookback})"
        )
    window = features.loc[:, list(bundle.feature_names)].iloc[-bundle.lookback :]
    values = np.asarray(window.to_numpy(dtype=np.float64), dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise BadInput(
            f"feature {bundle.feature_names[column]!r} is not finite at {window.index[row]}; "
            "check the bars around that time (zero or missing prices or volume)"
        )
    return values.reshape(1, -1)


def _symbol_of(key: str) -> str:
    """`BRK-B-direction-logreg` -> `BRK-B` (symbols may hold dashes; model types do not)."""
    parts = key.rsplit("-", 2)
    return parts[0] if len(parts) == 3 and parts[1] in {"direction", "return"} else ""  # noqa: PLR2004
