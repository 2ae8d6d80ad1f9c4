"""Which rows `run_walk_forward` really fits and scores on, fold by fold.

A recording wrapper around the real scikit-learn pipeline notes the sample index (column 0 of X)
of every row passed to `fit` and to the scoring call. For each fold, the latest fitted label must
stay at least the purge gap before the first row it scores: a model that saw even one test row,
or a label reaching into the test block, fails here whatever the data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.pipeline import Pipeline

from bot.core import WalkForwardConfig, run_walk_forward
from bot.core import walkforward as walkforward_module
from bot.core.estimators import make_pipeline

Calls = list[tuple[str, np.ndarray]]


class RecordingPipeline:
    """The real pipeline; `fit` and the scoring calls note the sample ids (column 0) they get."""

    def __init__(self, pipeline: Pipeline, calls: Calls) -> None:
        self._pipeline, self._calls = pipeline, calls

    def fit(self, X: np.ndarray, y: np.ndarray) -> RecordingPipeline:
        self._calls.append(("fit", X[:, 0].astype(int)))
        self._pipeline.fit(X, y)
        return self

    def predict_proba(self, X: np.ndarray) -> Any:
        self._calls.append(("score", X[:, 0].astype(int)))
        return self._pipeline.predict_proba(X)

    def predict(self, X: np.ndarray) -> Any:
        self._calls.append(("score", X[:, 0].astype(int)))
        return self._pipeline.predict(X)


def _recorded_run(
    monkeypatch: pytest.MonkeyPatch, *, n: int, target: str, horizon: int, config: WalkForwardConfig
) -> tuple[Any, Calls]:
    calls: Calls = []

    def recording(model_type: str, target: str, seed: int) -> RecordingPipeline:
        return RecordingPipeline(make_pipeline(model_type, target, seed), calls)

    monkeypatch.setattr(walkforward_module, "make_pipeline", recording)
    rng = np.random.default_rng(n + horizon)
    returns = rng.normal(0, 0.01, n)
    X = np.column_stack((np.arange(n, dtype=float), rng.normal(size=(n, 3))))
    y = (returns > 0).astype(float) if target == "direction" else returns
    run = run_walk_forward(
        X, y, returns, target=target, model_type="ridge", horizon=horizon, seed=0,
        cost_bps=1.0, config=config,
    )  # fmt: skip
    return run, calls


def _assert_no_row_crosses_the_purge_gap(
    calls: Calls, run: Any, *, horizon: int, purge: int
) -> None:
    # per fold: fit -> score the validation block, then fit -> score the test block
    assert [kind for kind, _ in calls] == ["fit", "score"] * 2 * len(run.folds)
    for number, fold in enumerate(run.folds):
        steps = calls[4 * number : 4 * number + 4]
        for (_, fitted), (_, scored), block in (
            (steps[0], steps[1], fold.validation),
            (steps[2], steps[3], fold.test),
        ):
            np.testing.assert_array_equal(scored, np.arange(block.start, block.stop))
            latest_label = int(fitted.max()) + horizon  # the label of sample i is known at i + h
            assert scored.min() - int(fitted.max()) > purge, (
                f"fold {number}: fitted on sample {fitted.max()}, scored from {scored.min()}: "
                f"less than the purge gap {purge} between them"
            )
            assert latest_label < scored.min(), f"fold {number}: a fitted label sees a scored row"
        np.testing.assert_array_equal(steps[2][1], np.arange(fold.train.start, fold.train.stop))


@pytest.mark.parametrize("target", ["direction", "return"])
@pytest.mark.parametrize("window", ["expanding", "rolling"])
def test_every_fold_fits_only_rows_a_purge_gap_before_what_it_scores(monkeypatch, target, window):
    config = WalkForwardConfig(min_train=300, refit_every=70, window=window)
    run, calls = _recorded_run(monkeypatch, n=700, target=target, horizon=3, config=config)
    assert len(run.folds) > 1
    _assert_no_row_crosses_the_purge_gap(calls, run, horizon=3, purge=3)
    np.testing.assert_array_equal(np.concatenate([s for kind, s in calls[3::4]]), run.test_index)


@settings(max_examples=12, deadline=None)
@given(
    horizon=st.integers(1, 8),
    extra_purge=st.integers(0, 4),
    refit_every=st.integers(1, 120),
    window=st.sampled_from(["expanding", "rolling"]),
)
def test_the_gap_holds_for_any_horizon_purge_and_refit_period(
    horizon, extra_purge, refit_every, window
):
    with pytest.MonkeyPatch.context() as monkeypatch:
        config = WalkForwardConfig(
            min_train=200, refit_every=refit_every, purge=horizon + extra_purge, window=window
        )
        run, calls = _recorded_run(
            monkeypatch, n=460, target="direction", horizon=horizon, config=config
        )
        _assert_no_row_crosses_the_purge_gap(
            calls, run, horizon=horizon, purge=horizon + extra_purge
        )
