"""The compiled serving form: exported at publish for every trainable model type, checked against
scikit-learn, loaded without unpickling, refused when it disagrees or was altered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import RobustScaler

from bot.artifacts import (
    ArtifactIntegrityError,
    ArtifactRegistry,
    CompiledExportError,
    NoCompiledForm,
    generate_keypair,
)
from bot.artifacts import registry as registry_module
from bot.artifacts.compiled import TOLERANCE, CompiledScorer, check_agreement, export_compiled
from bot.core import ModelBundle, predict_scores, supported_model_types
from bot.serving import Predictor
from tests.support.bundles import make_bundle
from tests.support.consumer import fit_bundle, sample_bars
from tests.support.legacy_onnx import onnx_exports

V1 = "20260101T000000Z-0001"
SIGNING_KEY = generate_keypair()[0]
MODELS = [(t, m) for t in ("direction", "return") for m in supported_model_types(t)]


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return sample_bars("SPX").iloc[-700:]


@pytest.fixture
def registry(tmp_path: Path) -> ArtifactRegistry:
    return ArtifactRegistry(tmp_path / "artifacts", signing_key=SIGNING_KEY)


@pytest.mark.parametrize(("target", "model_type"), MODELS)
def test_every_trainable_model_type_gets_a_compiled_form_that_reproduces_sklearn(
    registry: ArtifactRegistry, bars: pd.DataFrame, target: str, model_type: str
) -> None:
    bundle = fit_bundle(bars, symbol="SPX", target=target, model_type=model_type, version=V1)
    published = registry.publish(bundle)
    runtime, file = (
        ("treelite", "model.treelite")
        if model_type in {"rf", "hgb"}
        else ("linear", "model.linear.json")
    )
    assert {p.name for p in published.path.iterdir()} >= {"serving.json", file}
    assert all(result.ok for result in registry.verify(bundle.key))  # the manifest covers them

    compiled = registry.load_compiled(bundle.key, V1)
    assert compiled.scorer.runtime == runtime
    assert compiled.bundle.pipeline is None  # nothing unpickled
    windows = np.asarray(bundle.fit_windows)
    expected = predict_scores(bundle.pipeline, windows, target)
    got = compiled.scorer.scores(compiled.scorer.scaled(windows))
    assert np.max(np.abs(got - expected)) <= TOLERANCE
    np.testing.assert_array_equal(bundle.thresholds.codes(got), bundle.thresholds.codes(expected))
    assert compiled.scorer.agreement["windows"] == len(windows)
    assert compiled.scorer.agreement["action_mismatches"] == 0


def test_an_export_that_disagrees_with_sklearn_is_refused(
    registry: ArtifactRegistry, bars: pd.DataFrame
) -> None:
    """The check has teeth: another model's compiled form does not pass for this one."""
    mine = fit_bundle(bars, symbol="SPX", target="direction", model_type="logreg", version=V1)
    other = fit_bundle(bars.iloc[:400], symbol="SPX", target="direction", model_type="logreg",
                       version="20260101T000000Z-0002")  # fmt: skip
    registry.publish(other)
    foreign = registry.load_compiled(other.key, other.version).scorer
    with pytest.raises(CompiledExportError, match="differs from scikit-learn by up to"):
        check_agreement(mine, foreign, np.asarray(mine.fit_windows))


def test_a_bundle_without_training_windows_is_not_published(registry: ArtifactRegistry) -> None:
    bundle = make_bundle(version=V1)
    bare = type(bundle)(**{**{f: getattr(bundle, f) for f in bundle.__dataclass_fields__},
                           "fit_windows": None})  # fmt: skip
    with pytest.raises(CompiledExportError, match="carries no training windows"):
        registry.publish(bare)
    assert registry.keys() == []


def test_a_pipeline_without_compiled_form_is_served_by_sklearn_and_counted(
    registry: ArtifactRegistry,
) -> None:
    pipeline = Pipeline([("scaler", RobustScaler()), ("model", LogisticRegression())])
    bundle = make_bundle(version=V1, pipeline=pipeline)
    published = registry.publish(bundle)
    assert "serving.json" not in {p.name for p in published.path.iterdir()}
    with pytest.raises(NoCompiledForm):
        registry.load_compiled(bundle.key, V1)
    registry.promote(bundle.key, V1)
    predictor = Predictor(registry, runtime="compiled")
    [prediction] = predictor.predict_windows(bundle.key, np.asarray(bundle.fit_windows)[:1])
    assert predictor.runtime_of(bundle.key) == "sklearn"
    flag = REGISTRY.get_sample_value("itff_serving_sklearn_models", {"model_key": bundle.key})
    assert flag == 1
    assert prediction.probability == pytest.approx(
        bundle.pipeline.predict_proba(np.asarray(bundle.fit_windows)[:1])[0, 1], abs=1e-12
    )


@pytest.mark.parametrize("name", ["model.linear.json", "serving.json", "model.joblib"])
def test_an_altered_compiled_file_is_never_loaded(registry: ArtifactRegistry, name: str) -> None:
    bundle = make_bundle(version=V1)
    published = registry.publish(bundle)
    path = published.path / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="SHA-256 mismatch") as caught:
        registry.load_compiled(bundle.key, V1)
    assert caught.value.file == name


@pytest.mark.parametrize(
    ("target", "graph"),
    [("direction", "logistic"), ("direction", "skl2onnx"), ("return", "skl2onnx")],
)
def test_versions_exported_to_onnx_before_the_linear_form_still_serve(
    registry: ArtifactRegistry,
    bars: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    graph: str,
) -> None:
    """Buckets hold linear versions published as ONNX graphs (the 3-node logistic one and
    skl2onnx's): they load, never unpickle, and predict what the linear form of the same model
    predicts."""
    model_type = "logreg" if target == "direction" else "ridge"
    bundle = fit_bundle(bars, symbol="SPX", target=target, model_type=model_type, version=V1)
    with onnx_exports(monkeypatch, graph=graph):
        published = registry.publish(bundle)
    assert {p.name for p in published.path.iterdir()} >= {"serving.json", "model.onnx"}
    registry.promote(bundle.key, V1)
    onnx = registry.load_compiled(bundle.key, V1)
    assert onnx.scorer.runtime == "onnx"
    assert onnx.bundle.pipeline is None

    current = ArtifactRegistry(registry.root.parent / "current", signing_key=SIGNING_KEY)
    current.publish(bundle)
    current.promote(bundle.key, V1)
    windows = np.asarray(bundle.fit_windows)[-50:]
    old = Predictor(registry, runtime="compiled").predict_windows(bundle.key, windows)
    new = Predictor(current, runtime="compiled").predict_windows(bundle.key, windows)
    assert [p.action for p in old] == [p.action for p in new]
    np.testing.assert_allclose([p.score for p in old], [p.score for p in new], atol=TOLERANCE)


def _signed_linear_form(
    registry: ArtifactRegistry, monkeypatch: pytest.MonkeyPatch, linear: bytes
) -> ModelBundle:
    """A logreg version whose signed manifest covers `linear` as its model.linear.json: what a
    holder of the signing key, or a bug in the exporter, could publish."""
    bundle = make_bundle(version=V1)
    serving = json.loads(export_compiled(bundle)["serving.json"])
    files = {"serving.json": json.dumps(serving).encode(), "model.linear.json": linear}
    with monkeypatch.context() as patch:
        patch.setattr(registry_module, "export_compiled", lambda _bundle: files)
        registry.publish(bundle)
    return bundle


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"coef": [0.1] * 5, "intercept": 0.0, "link": "logistic"}, "not (6,)"),
        ({"coef": [0.1] * 5 + [float("nan")], "intercept": 0.0, "link": "logistic"}, "not finite"),
        ({"coef": [0.1] * 6, "intercept": float("inf"), "link": "logistic"}, "not finite"),
        ({"coef": [0.1] * 6, "intercept": 0.0, "link": "softmax"}, "unknown link 'softmax'"),
        ({"coef": [[0.1] * 6] * 2, "intercept": 0.0, "link": "logistic"}, "not (6,)"),
        ({"coef": [0.1] * 6, "link": "logistic"}, "KeyError"),
        ({"coef": ["a"] * 6, "intercept": 0.0, "link": "logistic"}, "ValueError"),
    ],
)
def test_a_malformed_linear_form_is_refused_not_served(
    registry: ArtifactRegistry, monkeypatch: pytest.MonkeyPatch, doc: dict[str, Any], problem: str
) -> None:
    raw = json.dumps(doc).replace("Infinity", "1e400").encode()  # JSON: overflows to inf
    bundle = _signed_linear_form(registry, monkeypatch, raw)
    with pytest.raises(ArtifactIntegrityError, match="serving form is malformed") as caught:
        registry.load_compiled(bundle.key, V1)
    assert problem in str(caught.value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=8)
                | st.dictionaries(st.sampled_from(["coef", "intercept", "link", "x"]), inner)
            ),
            max_leaves=20,
        ).map(lambda doc: json.dumps(doc).encode()),
    )
)
def test_any_linear_file_either_serves_or_is_refused(data: bytes) -> None:
    """Whatever a bucket holds as model.linear.json: a scorer that gives one float score per
    window, or a load error (which the registry reports as a malformed version). Scores that
    overflow (absurd coefficients) are the consumer's to refuse, as for any runtime."""
    serving = json.loads(export_compiled(make_bundle(version=V1))["serving.json"])
    try:
        scorer = CompiledScorer(serving, data)
    except (ValueError, TypeError, KeyError, AttributeError):
        return  # the registry turns any of these into "the compiled serving form is malformed"
    scores = scorer.scores(scorer.scaled(np.linspace(-2.0, 2.0, 12).reshape(2, 6)))
    assert scores.shape == (2,)
    assert scores.dtype == np.float64
