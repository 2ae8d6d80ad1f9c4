"""train_model: complete bundle, honest report, determinism, clear refusals, registry round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from bot.contracts import BadInput
from bot.core import (
    FEATURE_NAMES,
    MODEL_TYPES,
    WalkForwardConfig,
    evaluate_model,
    make_dataset,
    make_pipeline,
    new_version,
    plan,
    predict_scores,
    train_model,
)
from bot.data import load_bars
from tests.conftest import SAMPLE_DIR
from tests.support.keys import SIGNING_KEY

CONFIG = WalkForwardConfig(min_train=300, refit_every=200)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """BLAS/OpenMP threads on a shared 2-core machine only oversubscribe it."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return load_bars(f"csv:{SAMPLE_DIR}", "SPX").iloc[-900:]


@pytest.fixture(scope="module")
def trained(bars):
    return train_model(
        bars, symbol="spx", target="direction", model_type="logreg", lookback=2, horizon=1,
        interval="1D", seed=3, cost_bps=2.0, config=CONFIG,
    )  # fmt: skip


def test_bundle_is_complete(trained, bars):
    bundle = trained.bundle
    assert bundle.key == "SPX-direction-logreg"
    assert bundle.feature_names == FEATURE_NAMES
    assert (bundle.lookback, bundle.horizon, bundle.interval) == (2, 1, "1D")
    assert list(bundle.pipeline.named_steps) == ["scaler", "model"]
    assert bundle.thresholds.sell <= bundle.thresholds.buy
    assert bundle.train_end == bars.index[-1].to_pydatetime()
    assert bundle.train_start > bars.index[0].to_pydatetime()  # warm-up bars precede the 1st row
    n_inputs = 2 * len(FEATURE_NAMES)
    assert bundle.ood.mean.shape == (n_inputs,)
    assert bundle.ood.precision.shape == (n_inputs, n_inputs)
    assert bundle.ood.threshold > 0
    assert set(bundle.library_versions) >= {"sklearn", "numpy", "pandas", "joblib"}
    for name in ("accuracy", "accuracy_ci_low", "roc_auc", "sharpe", "max_drawdown", "n_trades"):
        assert name in bundle.metrics
    assert "baseline_buy_and_hold_sharpe" in bundle.metrics
    json.dumps(bundle.metrics)  # storable as JSON


def test_ood_threshold_flags_few_training_inputs_and_far_inputs(trained, bars):
    bundle = trained.bundle
    ds = make_dataset(bars, lookback=2, horizon=1, target="direction")
    scaled = bundle.pipeline.named_steps["scaler"].transform(ds.X[: ds.n_labelled])
    centred = scaled - bundle.ood.mean
    d2 = np.einsum("ij,jk,ik->i", centred, bundle.ood.precision, centred)
    assert 0.001 < np.mean(d2 > bundle.ood.threshold) < 0.02
    far = centred[0] * 0 + 25.0
    assert far @ bundle.ood.precision @ far > bundle.ood.threshold


def test_report_is_out_of_sample_with_baselines_and_equity(trained, bars):
    report = trained.report
    assert set(report.baselines) == {"buy_and_hold", "persistence", "random"}
    assert list(report.equity.columns) == ["time", "position", "strategy_return", "equity"]
    first_test = report.equity["time"].iloc[0]
    assert first_test > bars.index[300]  # after min_train samples and the warm-up
    assert report.metrics["n"] == len(report.equity)
    assert report.n_folds == len(report.fold_metrics) == len(report.thresholds)
    equity = (1 + report.equity["strategy_return"]).cumprod()
    np.testing.assert_allclose(report.equity["equity"], equity)
    assert report.baselines["buy_and_hold"]["exposure"] == 1.0
    assert json.loads(json.dumps(report.to_dict()))["key"] == "SPX-direction-logreg"


def test_same_data_and_seed_train_to_identical_predictions(bars):
    def predictions(seed: int) -> np.ndarray:
        result = train_model(bars, symbol="SPX", target="return", model_type="hgb", seed=seed,
                             config=CONFIG)  # fmt: skip
        ds = make_dataset(bars, lookback=1, horizon=1, target="return")
        return result.bundle.pipeline.predict(ds.X)

    first, second = predictions(5), predictions(5)
    np.testing.assert_array_equal(first, second)


def test_evaluation_alone_matches_the_training_report(bars, trained):
    report = evaluate_model(
        bars, symbol="SPX", target="direction", model_type="logreg", lookback=2, seed=3,
        cost_bps=2.0, config=CONFIG,
    )  # fmt: skip
    assert report.metrics == trained.report.metrics


def test_versions_are_unique_and_sortable():
    versions = [new_version("K") for _ in range(50)]
    assert len(set(versions)) == 50
    assert sorted(versions) == versions


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_every_direction_pipeline_scores_probabilities(model_type, bars):
    ds = make_dataset(bars, lookback=1, horizon=1, target="direction")
    n = ds.n_labelled
    pipeline = make_pipeline(model_type, "direction", 0).fit(ds.X[:n], ds.y[:n])
    scores = predict_scores(pipeline, ds.X[:n], "direction")
    assert ((scores > 0) & (scores < 1)).all()


def test_logreg_cannot_predict_returns_and_says_what_can(bars):
    with pytest.raises(
        BadInput, match=r"'logreg' cannot predict the 'return' target; use one of ridge"
    ):
        train_model(bars, symbol="SPX", target="return", model_type="logreg")
    valid, skips = plan(["SPX"], ["direction", "return"], ["logreg", "ridge"])
    assert [c.key for c in valid] == [
        "SPX-direction-logreg",
        "SPX-direction-ridge",
        "SPX-return-ridge",
    ]
    assert [(s.key, s.reason) for s in skips] == [
        ("SPX-return-logreg", "logreg cannot predict return (use ridge, rf, hgb)")
    ]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"target": "price"}, "unknown target"),
        ({"model_type": "xgb"}, "unknown model type"),
        ({"config": WalkForwardConfig(min_train=5000)}, "too few"),
    ],
)
def test_bad_requests_are_refused(bars, kwargs, match):
    args = {"symbol": "SPX", "target": "direction", "model_type": "ridge"} | kwargs
    with pytest.raises(BadInput, match=match):
        train_model(bars, **args)


def test_bundle_round_trips_through_the_artifact_registry(trained, tmp_path, bars):
    from bot.artifacts import ArtifactRegistry

    registry = ArtifactRegistry(tmp_path / "artifacts", signing_key=SIGNING_KEY)
    published = registry.publish(trained.bundle)
    registry.promote(published.key, published.version)
    loaded = registry.load(published.key)
    ds = make_dataset(bars, lookback=2, horizon=1, target="direction")
    np.testing.assert_array_equal(
        loaded.pipeline.predict_proba(ds.X), trained.bundle.pipeline.predict_proba(ds.X)
    )
    assert loaded.thresholds == trained.bundle.thresholds
