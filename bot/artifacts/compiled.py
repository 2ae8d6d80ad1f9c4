"""The compiled, pickle-free serving form of a champion: exported at publish, loaded to serve.

Each version folder gets, next to `model.joblib` (training-side provenance only):

    serving.json       the scaler as plain arrays (mean, scale), which runtime and file hold the
                       model, the output column of the score, and the agreement measured at export
    model.linear.json  linear models (logreg, ridge): coefficients, intercept and link as plain
                       arrays, scored in numpy (`x @ coef + intercept`, logistic for P(up))
    model.treelite     tree ensembles (rf, hgb), a treelite checkpoint run by its GTIL interpreter

Versions exported before the linear form hold `model.onnx` instead (the linear model as an ONNX
graph, run by ONNX Runtime in float64); they still load. The linear form replaced it because a
one-row ONNX Runtime `run` costs 4.3-5 us here against 1.3 us for the same arithmetic in numpy
(`bench/predict.py`). All are data, not code: loading them never unpickles. Thresholds, OOD
statistics and feature names are already plain JSON in `meta.json`. The scaler is applied in
numpy as scikit-learn's StandardScaler does it (`(x - mean) / scale`), so its output is
bit-identical.

An export is only written when the compiled model reproduces the scikit-learn pipeline on the
training windows: scores to `TOLERANCE` and identical actions; otherwise the publish fails.
A pipeline with no compiled form (another scaler or estimator) is published without one and is
served through scikit-learn (flagged in the gauge `itff_serving_sklearn_models`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bot.artifacts.format import LINEAR_FILE, SERVING_FILE, TREELITE_FILE
from bot.contracts import IntegrityError
from bot.core import ModelBundle, predict_scores
from bot.runtime import get_logger

FloatArray = NDArray[np.float64]
TOLERANCE = 1e-6
SERVING_FORMAT = 1
log = get_logger(__name__)


class NoCompiledForm(IntegrityError):  # noqa: N818 - names what the caller must do instead
    """The version has no compiled form: serve it through scikit-learn."""


class CompiledExportError(IntegrityError):
    """The compiled model does not reproduce scikit-learn; the version must not be published."""


@dataclass(frozen=True, slots=True)
class Agreement:
    """How closely the compiled form reproduced scikit-learn at export."""

    windows: int
    max_abs_diff: float  # largest |compiled score - scikit-learn score|
    scaled_max_abs_diff: float  # largest difference of the scaled inputs (OOD input)
    action_mismatches: int

    def as_json(self) -> dict[str, float | int]:
        return {
            "windows": self.windows,
            "max_abs_diff": self.max_abs_diff,
            "scaled_max_abs_diff": self.scaled_max_abs_diff,
            "action_mismatches": self.action_mismatches,
        }


class CompiledScorer:
    """Scales windows in numpy and scores them in numpy (linear), with treelite GTIL (trees) or
    ONNX Runtime (linear models exported before the linear form). Thread-safe."""

    def __init__(self, serving: dict[str, Any], model: bytes) -> None:
        self.runtime = str(serving["runtime"])
        self.mean = np.asarray(serving["scaler"]["mean"], dtype=np.float64)
        self.scale = np.asarray(serving["scaler"]["scale"], dtype=np.float64)
        self.column = int(serving["column"])
        self.agreement = dict(serving.get("agreement", {}))
        self._score: Callable[[FloatArray], FloatArray]
        if self.runtime == "linear":
            self._score = _linear_scorer(model, self.column, len(self.mean))
        elif self.runtime == "onnx":
            self._score = _onnx_scorer(model, self.column)
        elif self.runtime == "treelite":
            self._score = _treelite_scorer(model, self.column)
        else:
            raise ValueError(f"unknown compiled runtime {self.runtime!r}")

    @property
    def n_inputs(self) -> int:
        return len(self.mean)

    def scaled(self, windows: FloatArray) -> FloatArray:
        out: FloatArray = np.subtract(windows, self.mean, dtype=np.float64)
        return np.divide(out, self.scale, out=out)

    def scores(self, scaled: FloatArray) -> FloatArray:
        return self._score(scaled)


def _linear_scorer(model: bytes, column: int, n_inputs: int) -> Callable[[FloatArray], FloatArray]:
    """`x @ coef + intercept`, through the logistic function (`scipy.special.expit`, as
    scikit-learn's `predict_proba`) when the link is `logistic`; each row's sum in one fixed
    order. Refuses arrays of another width, non-finite values and unknown links: the file is
    verified, but it is still input."""
    from scipy.special import expit

    doc = json.loads(model)
    coef = np.asarray(doc["coef"], dtype=np.float64)
    intercept, link = float(doc["intercept"]), doc["link"]
    if coef.shape != (n_inputs,):
        raise ValueError(f"coefficients of shape {coef.shape}, not ({n_inputs},)")
    if not (np.isfinite(coef).all() and math.isfinite(intercept)):
        raise ValueError("coefficients or intercept not finite")
    if column != 0:
        raise ValueError(f"a linear model has one output column, not column {column}")

    def linear(scaled: FloatArray) -> FloatArray:
        # `vecdot` (one row at a time, one summation order), not `scaled @ coef`: BLAS sums a
        # 1-row and an n-row product in other orders (last-bit differences), and a window must
        # score the same alone or in a batch. einsum would too, at 2-3x the cost of one row.
        sums: FloatArray = np.vecdot(scaled, coef)
        return np.add(sums, intercept, out=sums)

    if link == "identity":
        return linear
    if link == "logistic":
        return lambda scaled: expit(linear(scaled))
    raise ValueError(f"unknown link {link!r} (logistic or identity)")


def _onnx_scorer(model: bytes, column: int) -> Callable[[FloatArray], FloatArray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one row: threads cost more than they bring
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    feed, output = session.get_inputs()[0].name, session.get_outputs()[-1].name

    def score(scaled: FloatArray) -> FloatArray:
        out = session.run([output], {feed: scaled})[0]
        return np.asarray(out, dtype=np.float64).reshape(len(scaled), -1)[:, column]

    return score


def _treelite_scorer(model: bytes, column: int) -> Callable[[FloatArray], FloatArray]:
    """GTIL through treelite's C API (`TreeliteGTILPredict`) with its configuration parsed once.

    `treelite.gtil.predict` parses a JSON configuration and queries the model's types and output
    shape on every call: ~20 us of a ~30 us one-row prediction. The cached call is checked
    against it at load, on the same rows, so a treelite that changed its C API fails the load.
    """
    import ctypes

    import treelite
    from treelite.core import _LIB, _check_call
    from treelite.gtil.gtil import GTILConfig

    forest = treelite.Model.deserialize_bytes(model)
    if (forest.input_type, forest.output_type) != ("float64", "float64"):
        raise ValueError(f"treelite model of {forest.input_type}/{forest.output_type}, not float64")
    config = GTILConfig(nthread=1, predict_type="default")
    shape, ndim = ctypes.POINTER(ctypes.c_uint64)(), ctypes.c_uint64()
    rows_of_one = ctypes.c_uint64(1)
    _check_call(
        _LIB.TreeliteGTILGetOutputShape(
            forest.handle, rows_of_one, config.handle, ctypes.byref(shape), ctypes.byref(ndim)
        )
    )
    per_row = tuple(int(n) for n in np.ctypeslib.as_array(shape, shape=(ndim.value,))[1:])
    doubles, predict = ctypes.POINTER(ctypes.c_double), _LIB.TreeliteGTILPredict

    def score(scaled: FloatArray) -> FloatArray:
        rows = np.ascontiguousarray(scaled, dtype=np.float64)
        out = np.empty((len(rows), *per_row), dtype=np.float64)
        _check_call(
            predict(
                forest.handle, rows.ctypes.data_as(doubles), b"float64",
                ctypes.c_uint64(len(rows)), out.ctypes.data_as(doubles), config.handle,
            )
        )  # fmt: skip
        return out.reshape(len(rows), -1)[:, column]

    probe = np.linspace(-3.0, 3.0, 3 * forest.num_feature, dtype=np.float64).reshape(3, -1)
    reference = np.asarray(treelite.gtil.predict(forest, probe, nthread=1), dtype=np.float64)
    if not np.array_equal(score(probe), reference.reshape(3, -1)[:, column]):
        raise ValueError("treelite's GTIL C API gives other results than treelite.gtil.predict")
    return score


@dataclass(frozen=True, slots=True)
class CompiledModel:
    """A verified version in its compiled form: the bundle (no pipeline) and its scorer."""

    bundle: ModelBundle
    scorer: CompiledScorer

    def __init__(self, bundle: ModelBundle, serving: dict[str, Any], model: bytes) -> None:
        if serving.get("format") != SERVING_FORMAT:
            raise ValueError(f"serving.json format {serving.get('format')!r} is not 1")
        scorer = CompiledScorer(serving, model)
        n_inputs = bundle.lookback * len(bundle.feature_names)
        if scorer.n_inputs != n_inputs:
            raise ValueError(f"the compiled scaler takes {scorer.n_inputs} inputs, not {n_inputs}")
        object.__setattr__(self, "bundle", bundle)
        object.__setattr__(self, "scorer", scorer)


# ---- export ----------------------------------------------------------------------------------


def export_compiled(bundle: ModelBundle) -> dict[str, bytes]:
    """The compiled files of a bundle (empty when its pipeline has no compiled form).

    Raises `CompiledExportError` when the export does not reproduce scikit-learn on the training
    windows (`bundle.fit_windows`), which fails the publish.
    """
    converted = _convert(bundle)
    if converted is None:
        log.warning(
            "no compiled form: this version will be served through scikit-learn",
            model_key=bundle.key, version=bundle.version,
            steps=[type(step).__name__ for _, step in bundle.pipeline.steps],
        )  # fmt: skip
        return {}
    runtime, name, data, column = converted
    scaler = bundle.pipeline.steps[0][1]
    serving: dict[str, Any] = {
        "format": SERVING_FORMAT,
        "runtime": runtime,
        "file": name,
        "column": column,
        "scaler": {
            "mean": np.asarray(scaler.mean_, dtype=np.float64).tolist(),
            "scale": np.asarray(scaler.scale_, dtype=np.float64).tolist(),
        },
    }
    agreement = check_agreement(bundle, CompiledScorer(serving, data), _check_windows(bundle))
    serving["agreement"] = agreement.as_json()
    log.info("compiled export", model_key=bundle.key, runtime=runtime, **agreement.as_json())
    return {SERVING_FILE: json.dumps(serving, allow_nan=False).encode(), name: data}


def check_agreement(bundle: ModelBundle, scorer: CompiledScorer, windows: FloatArray) -> Agreement:
    """Compare the compiled scorer with the scikit-learn pipeline; raise when they disagree."""
    expected = predict_scores(bundle.pipeline, windows, bundle.target)
    reference_scaled = np.asarray(bundle.pipeline.steps[0][1].transform(windows), dtype=np.float64)
    scaled = scorer.scaled(windows)
    got = scorer.scores(scaled)
    mismatches = int((bundle.thresholds.codes(got) != bundle.thresholds.codes(expected)).sum())
    agreement = Agreement(
        windows=len(windows),
        max_abs_diff=float(np.max(np.abs(got - expected))),
        scaled_max_abs_diff=float(np.max(np.abs(scaled - reference_scaled))),
        action_mismatches=mismatches,
    )
    if not (agreement.max_abs_diff <= TOLERANCE and agreement.scaled_max_abs_diff <= TOLERANCE):
        raise CompiledExportError(
            f"{bundle.key}/{bundle.version}: the compiled {scorer.runtime} model differs from "
            f"scikit-learn by up to {agreement.max_abs_diff:.3g} (scaled inputs "
            f"{agreement.scaled_max_abs_diff:.3g}) on {len(windows)} training windows, more than "
            f"{TOLERANCE}; the version was not published: report it with the model type"
        )
    if mismatches:
        raise CompiledExportError(
            f"{bundle.key}/{bundle.version}: the compiled {scorer.runtime} model gives another "
            f"action than scikit-learn on {mismatches} of {len(windows)} training windows; the "
            "version was not published: report it with the model type"
        )
    return agreement


def _check_windows(bundle: ModelBundle) -> FloatArray:
    if bundle.fit_windows is None:
        raise CompiledExportError(
            f"{bundle.key}/{bundle.version} carries no training windows (`fit_windows`), so its "
            "compiled export cannot be checked; publish bundles made by `train_model`"
        )
    windows = np.asarray(bundle.fit_windows, dtype=np.float64)
    return windows.reshape(len(windows), -1)


def _convert(bundle: ModelBundle) -> tuple[str, str, bytes, int] | None:
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    from bot.core.estimators import RidgeScoreClassifier

    steps = bundle.pipeline.steps
    if len(steps) != 2 or type(steps[0][1]) is not StandardScaler:  # noqa: PLR2004
        return None
    head, n_inputs = steps[1][1], bundle.lookback * len(bundle.feature_names)
    trees = (
        RandomForestClassifier, RandomForestRegressor,
        HistGradientBoostingClassifier, HistGradientBoostingRegressor,
    )  # fmt: skip
    if type(head) in trees:
        return ("treelite", TREELITE_FILE, _treelite_bytes(head), _up_column(head, bundle))
    if type(head) in (RidgeScoreClassifier, LogisticRegression):
        column = _up_column(head, bundle)
        return ("linear", LINEAR_FILE, _linear_json(head, n_inputs, "logistic"), column)
    if type(head) is Ridge:
        return ("linear", LINEAR_FILE, _linear_json(head, n_inputs, "identity"), 0)
    return None


def _up_column(head: Any, bundle: ModelBundle) -> int:
    """The output column holding P(up) (direction) or the prediction (return)."""
    if bundle.target != "direction":
        return 0
    classes = [int(c) for c in getattr(head, "classes_", [])]
    if classes != [0, 1]:
        raise CompiledExportError(
            f"{bundle.key}: a direction model must have classes [0, 1], got {classes}; retrain it"
        )
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from bot.core.estimators import RidgeScoreClassifier

    # binary boosting, the linear form and logistic graphs give one column, P(class 1); forests two
    one = HistGradientBoostingClassifier | RidgeScoreClassifier | LogisticRegression
    return 0 if isinstance(head, one) else 1


def _treelite_bytes(head: Any) -> bytes:
    import treelite

    return bytes(treelite.sklearn.import_model(head).serialize_bytes())


def _linear_json(head: Any, n_inputs: int, link: str) -> bytes:
    """The coefficients, intercept and link of a one-output linear model, as JSON (floats written
    by `repr`, so they read back exactly). `logistic`: P(up) = logistic(x @ coef + intercept), as
    `LogisticRegression.predict_proba` and `RidgeScoreClassifier.predict_proba` compute it for
    class 1; `identity`: `Ridge.predict`."""
    coef = np.asarray(head.coef_, dtype=np.float64).reshape(-1)
    intercept = np.asarray(head.intercept_, dtype=np.float64).reshape(-1)
    if coef.shape != (n_inputs,) or intercept.shape != (1,):
        raise CompiledExportError(
            f"a linear model with {coef.size} coefficients and {intercept.size} intercepts has no "
            f"linear form for {n_inputs} inputs and one output"
        )
    doc = {"coef": coef.tolist(), "intercept": float(intercept[0]), "link": link}
    return json.dumps(doc, allow_nan=False).encode()
