"""The compiled serving form: exported at publish for every trainable model type, checked against
scikit-learn, loaded without unpickling, refused when it disagrees or was altered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
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
from bot.artifacts.compiled import TOLERANCE, check_agreement
from bot.core import predict_scores, supported_model_types
from bot.serving import Predictor
from tests.support.bundles import make_bundle
from tests.support.consumer import fit_bundle, sample_bars

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
        ("treelite", "model.treelite") if model_type in {"rf", "hgb"} else ("onnx", "model.onnx")
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


@pytest.mark.parametrize("name", ["model.onnx", "serving.json", "model.joblib"])
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
