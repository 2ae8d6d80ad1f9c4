"""Golden values: stored sample sequences and the predictions that fixed data and seeds give.

A failure means features or models changed behaviour. If that was intended, regenerate with
`python -m tests.golden.make_golden` and review the diff of golden.json.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from tests.golden.make_golden import GOLDEN, golden_bars, sample_windows, trained_scores

STORED = json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module")
def bars():
    return golden_bars()


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(limits=1):
        yield


def test_the_sample_sequences_are_rebuilt_from_the_bars(bars):
    assert [str(bars.index[0]), str(bars.index[-1])] == STORED["bars"]
    np.testing.assert_allclose(sample_windows(bars), STORED["windows"], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("key", sorted(STORED["predictions"]))
def test_fixed_data_and_seed_give_the_stored_predictions(bars, key):
    target, model_type = key.split("-")
    expected = np.array(STORED["predictions"][key])
    np.testing.assert_allclose(trained_scores(target, model_type, bars), expected, rtol=1e-7)
    assert np.ptp(expected) > 0  # the stored predictions differ between windows


def test_predictions_from_the_stored_windows_themselves(bars):
    """The stored windows, not rebuilt ones, through the same fit: the sequence is the input."""
    from bot.core import make_dataset, make_pipeline, predict_scores
    from tests.golden.make_golden import HORIZON, LOOKBACK, SEED, TRAIN_BARS

    train = make_dataset(bars.iloc[:TRAIN_BARS], lookback=LOOKBACK, horizon=HORIZON,
                         target="direction")  # fmt: skip
    n = train.n_labelled
    pipeline = make_pipeline("logreg", "direction", SEED).fit(train.X[:n], train.y[:n])
    scores = predict_scores(pipeline, np.array(STORED["windows"]), "direction")
    np.testing.assert_allclose(scores, STORED["predictions"]["direction-logreg"], rtol=1e-7)


@pytest.mark.parametrize("key", sorted(STORED["predictions"]))
def test_the_compiled_serving_form_gives_the_stored_predictions(bars, key, tmp_path):
    """Published, exported and served through the compiled runtime (no unpickling), the stored
    windows give the stored scores, and the same actions as the scikit-learn runtime."""
    from datetime import UTC, datetime

    from bot.artifacts import ArtifactRegistry, generate_keypair
    from bot.core import (
        FEATURE_NAMES,
        ModelBundle,
        Thresholds,
        make_dataset,
        make_pipeline,
        neutral_score,
        ood_summary,
    )
    from bot.serving import Predictor
    from tests.golden.make_golden import HORIZON, LOOKBACK, SEED, TRAIN_BARS

    target, model_type = key.split("-")
    train = make_dataset(bars.iloc[:TRAIN_BARS], lookback=LOOKBACK, horizon=HORIZON, target=target)
    X, y = train.X[: train.n_labelled], train.y[: train.n_labelled]
    pipeline = make_pipeline(model_type, target, SEED).fit(X, y)
    cut = neutral_score(target)
    bundle = ModelBundle(
        symbol="SPX", target=target, model_type=model_type, version="20260101T000000Z-0001",
        pipeline=pipeline, feature_names=FEATURE_NAMES, lookback=LOOKBACK, horizon=HORIZON,
        interval="1D", thresholds=Thresholds(cut, cut), fit_windows=X,
        train_start=datetime(2015, 1, 1, tzinfo=UTC), train_end=datetime(2018, 1, 1, tzinfo=UTC),
        ood=ood_summary(pipeline[0].transform(X)),
    )  # fmt: skip
    registry = ArtifactRegistry(tmp_path, signing_key=generate_keypair()[0])
    registry.publish(bundle)
    registry.promote(bundle.key, bundle.version)
    compiled, reference = Predictor(registry, "compiled"), Predictor(registry, "sklearn")
    windows = np.array(STORED["windows"])
    served = compiled.predict_windows(bundle.key, windows)
    assert compiled.runtime_of(bundle.key) == "compiled"
    scores = [p.probability if target == "direction" else p.prediction for p in served]
    np.testing.assert_allclose(scores, STORED["predictions"][key], rtol=1e-7)
    actions = [p.action for p in reference.predict_windows(bundle.key, windows)]
    assert [p.action for p in served] == actions
