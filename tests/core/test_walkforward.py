"""Walk-forward splits never let a test sample into its own training window or purge gap."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.contracts import BadInput
from bot.core import WalkForwardConfig, choose_thresholds, make_folds


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(400, 3000),
    horizon=st.integers(1, 10),
    extra_purge=st.integers(0, 5),
    min_train=st.integers(200, 800),
    refit_every=st.integers(1, 400),
    window=st.sampled_from(["expanding", "rolling"]),
)
def test_no_test_index_in_its_training_window_or_purge_gap(  # noqa: PLR0917
    n, horizon, extra_purge, min_train, refit_every, window
):
    purge = horizon + extra_purge
    config = WalkForwardConfig(
        min_train=min_train, refit_every=refit_every, purge=purge, window=window
    )
    if n <= min_train + purge:
        with pytest.raises(BadInput):
            make_folds(n, horizon=horizon, config=config)
        return
    folds = make_folds(n, horizon=horizon, config=config)
    covered = np.concatenate([np.arange(f.test.start, f.test.stop) for f in folds])
    np.testing.assert_array_equal(covered, np.arange(min_train + purge, n))  # each once, in order
    for fold in folds:
        test = set(fold.test)
        for used in (fold.train, fold.fit, fold.validation):
            assert not test & set(used)
            # a training label reaches h bars ahead: it must stay before the test block
            assert max(used) + horizon < fold.test.start
        assert fold.train.stop + purge <= fold.test.start
        assert fold.fit.stop + purge <= fold.validation.start
        assert fold.validation.stop == fold.train.stop
        assert len(fold.test) <= refit_every
        if window == "rolling":
            assert len(fold.train) <= min_train


def test_a_purge_shorter_than_the_horizon_is_refused():
    with pytest.raises(BadInput, match="purge"):
        make_folds(2000, horizon=5, config=WalkForwardConfig(purge=2))


def test_too_few_samples_are_refused_with_what_to_do():
    with pytest.raises(BadInput, match="min_train"):
        make_folds(900, horizon=1, config=WalkForwardConfig(min_train=1000))


def test_thresholds_come_from_the_validation_scores_only():
    rng = np.random.default_rng(3)
    scores = rng.uniform(0.3, 0.7, 400)
    # next returns that reward following the score: buy high scores, sell low ones
    returns = (scores - 0.5) * 0.02 + rng.normal(0, 0.001, 400)
    rule = choose_thresholds(scores, returns, target="direction", cost_bps=1, allow_short=True)
    assert rule.sell <= rule.buy
    assert rule.sell <= 0.5 <= rule.buy or rule.buy == rule.sell
    assert set(np.round([rule.buy, rule.sell], 12)) <= set(
        np.round(np.concatenate(([0.5], np.quantile(scores, np.linspace(0.1, 0.9, 9)))), 12)
    )
