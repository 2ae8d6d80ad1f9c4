"""The ONNX export that linear models had before their plain-array form (`model.linear.json`):
tests publish versions with it to prove that such versions, already in buckets, still load."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

from bot.artifacts import compiled as compiled_module
from bot.artifacts import registry as registry_module
from bot.core import ModelBundle

OPSET = {"": 17, "ai.onnx.ml": 3}


def logistic_onnx(head: Any, n_inputs: int) -> bytes:
    """P(up) of a binary linear classifier, logistic(x @ coef.T + intercept), as a 3-node graph."""
    from skl2onnx.algebra.onnx_ops import OnnxAdd, OnnxMatMul, OnnxSigmoid

    coef = np.asarray(head.coef_, dtype=np.float64).T  # (n_inputs, 1)
    intercept = np.asarray(head.intercept_, dtype=np.float64).reshape(1)
    version = OPSET[""]
    linear = OnnxAdd(OnnxMatMul("X", coef, op_version=version), intercept, op_version=version)
    node = OnnxSigmoid(linear, op_version=version, output_names=["score"])
    sample = np.zeros((1, n_inputs), dtype=np.float64)
    return bytes(node.to_onnx({"X": sample}, target_opset=version).SerializeToString())


def skl2onnx_graph(head: Any, n_inputs: int) -> bytes:
    """skl2onnx's own graph of `head` (Ridge; LogisticRegression with both columns)."""
    from skl2onnx import to_onnx

    sample = np.zeros((1, n_inputs), dtype=np.float64)
    options = {id(head): {"zipmap": False}} if hasattr(head, "predict_proba") else None
    model = to_onnx(head, sample, target_opset=OPSET, options=options)
    return bytes(model.SerializeToString())


def export_onnx(bundle: ModelBundle, *, graph: str = "logistic") -> dict[str, bytes]:
    """`export_compiled` as it was for a linear bundle: serving.json + model.onnx, checked."""
    head, scaler = bundle.pipeline.steps[1][1], bundle.pipeline.steps[0][1]
    n_inputs = bundle.lookback * len(bundle.feature_names)
    if graph == "logistic" and bundle.target == "direction":
        data, column = logistic_onnx(head, n_inputs), 0
    else:
        data = skl2onnx_graph(head, n_inputs)
        column = 1 if bundle.target == "direction" else 0
    serving: dict[str, Any] = {
        "format": compiled_module.SERVING_FORMAT,
        "runtime": "onnx",
        "file": "model.onnx",
        "column": column,
        "scaler": {
            "mean": np.asarray(scaler.mean_, dtype=np.float64).tolist(),
            "scale": np.asarray(scaler.scale_, dtype=np.float64).tolist(),
        },
    }
    scorer = compiled_module.CompiledScorer(serving, data)
    windows = np.asarray(bundle.fit_windows, dtype=np.float64)
    agreement = compiled_module.check_agreement(bundle, scorer, windows.reshape(len(windows), -1))
    serving["agreement"] = agreement.as_json()
    return {"serving.json": json.dumps(serving).encode(), "model.onnx": data}


@contextmanager
def onnx_exports(monkeypatch: pytest.MonkeyPatch, *, graph: str = "logistic") -> Iterator[None]:
    """Publishes made inside export linear models as ONNX, as before the linear form."""
    with monkeypatch.context() as patch:
        patch.setattr(registry_module, "export_compiled", lambda b: export_onnx(b, graph=graph))
        yield
