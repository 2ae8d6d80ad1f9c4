"""Walk-forward splits never let a test sample into its own training window or purge gap."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.contracts import BadInput
from bot.core import (
    Thresholds,
    WalkForwardConfig,
    choose_thresholds,
    make_folds,
    make_pipeline,
    run_walk_forward,
)
from bot.core.walkforward import inner_split


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


def _ranges(*bounds):
    return [range(start, stop) for start, stop in bounds]


@pytest.mark.parametrize(
    ("window", "train", "validation", "fit"),
    [
        # n=1000, purge 2, min_train 300, refit 250: tests [302, 552), [552, 802), [802, 1000);
        # validation = the last max(30, 20 %) of the training range, fit ends a purge before it.
        (
            "expanding",
            [(0, 300), (0, 550), (0, 800)],
            [(240, 300), (440, 550), (640, 800)],
            [(0, 238), (0, 438), (0, 638)],
        ),
        (
            "rolling",
            [(0, 300), (250, 550), (500, 800)],
            [(240, 300), (490, 550), (740, 800)],
            [(0, 238), (250, 488), (500, 738)],
        ),
    ],
)
def test_folds_of_a_small_history_worked_out_by_hand(window, train, validation, fit):
    config = WalkForwardConfig(min_train=300, refit_every=250, window=window)
    folds = make_folds(1000, horizon=2, config=config)
    assert [f.test for f in folds] == _ranges((302, 552), (552, 802), (802, 1000))
    assert [f.train for f in folds] == _ranges(*train)
    assert [f.validation for f in folds] == _ranges(*validation)
    assert [f.fit for f in folds] == _ranges(*fit)


def test_the_smallest_window_that_leaves_enough_to_fit_is_accepted():
    # 131 samples, purge 1: validation = the last 30, fit = [0, 100), exactly MIN_FIT_SAMPLES
    fit, validation = inner_split(range(131), purge=1, validation_fraction=0.2)
    assert (fit, validation) == (range(100), range(101, 131))
    fit, _ = inner_split(range(500, 631), purge=1, validation_fraction=0.2)
    assert fit == range(500, 600)  # a rolling window fits from its own start
    with pytest.raises(BadInput, match=r"leaves 99 to fit .* use more bars \(at least 131\)"):
        inner_split(range(130), purge=1, validation_fraction=0.2)


def test_a_refit_period_below_one_bar_is_refused_with_what_to_do():
    with pytest.raises(BadInput, match="refit_every must be at least 1 bar, got 0"):
        make_folds(2000, horizon=1, config=WalkForwardConfig(refit_every=0))


def test_a_single_direction_class_in_a_training_window_is_refused():
    n = 600
    X, returns = np.random.default_rng(1).normal(size=(n, 3)), np.full(n, 0.01)
    config = WalkForwardConfig(min_train=300, refit_every=100)
    kwargs = {"model_type": "logreg", "horizon": 1, "seed": 0, "cost_bps": 1.0, "config": config}
    with pytest.raises(
        BadInput, match=r"^a training window holds only one direction class; use more bars$"
    ):
        run_walk_forward(X, np.ones(n), returns, target="direction", **kwargs)
    # a constant *return* label is a regression target like any other
    run = run_walk_forward(X, returns, returns, target="return", **kwargs | {"model_type": "ridge"})
    assert run.scores.size == n - 301


@pytest.mark.parametrize("target", ["direction", "return"])
def test_without_returns_to_judge_by_every_fold_keeps_the_neutral_thresholds(target):
    """Zero validation returns and no cost: no candidate has a Sharpe ratio, the neutral pair stays
    (0.5 for a probability of up, 0 for a predicted return), and positions follow it."""
    rng = np.random.default_rng(2)
    n = 700
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] + rng.normal(size=n) > 0).astype(float) if target == "direction" else X[:, 0]
    config = WalkForwardConfig(min_train=300, refit_every=150)
    run = run_walk_forward(
        X, y, np.zeros(n), target=target, model_type="ridge", horizon=1, seed=0, cost_bps=0.0,
        config=config,
    )  # fmt: skip
    centre = 0.5 if target == "direction" else 0.0
    assert run.thresholds == (Thresholds(buy=centre, sell=centre),) * len(run.folds)
    np.testing.assert_array_equal(run.positions, np.where(run.scores >= centre, 1.0, -1.0))


def test_ties_keep_the_neutral_pair_first():
    # Two score values: every pair that buys 0.8 and sells 0.2 trades alike; the first is neutral.
    scores = np.tile([0.2, 0.8], 50)
    returns = np.where(scores > 0.5, 0.01, -0.01) + np.random.default_rng(4).normal(0, 0.002, 100)
    for allow_short in (True, False):
        rule = choose_thresholds(
            scores, returns, target="direction", cost_bps=0, allow_short=allow_short
        )
        assert rule == Thresholds(buy=0.5, sell=0.5)


def _separable(n: int = 200) -> tuple[np.ndarray, np.ndarray, float]:
    """Scores all above 0.5 whose next return is +1 % above their median and -1 % below it."""
    rng = np.random.default_rng(5)
    scores = rng.permutation(np.linspace(0.55, 0.95, n))
    median = float(np.quantile(scores, 0.5))
    returns = np.where(scores >= median, 0.01, -0.01) + rng.normal(0, 0.001, n)
    return scores, returns, median


def test_the_best_pair_may_be_one_threshold_away_from_the_centre():
    """Long above the median, short below it is the only rule that is right on every bar."""
    scores, returns, median = _separable()
    rule = choose_thresholds(scores, returns, target="direction", cost_bps=1, allow_short=True)
    assert rule == Thresholds(buy=median, sell=median)


def test_long_flat_thresholds_buy_above_the_median_and_keep_the_first_sell_level():
    """Long-flat, a sell level changes nothing (sell and hold are both flat): the first candidate
    with buy = median wins the tie, and its sell level is the neutral 0.5."""
    scores, returns, median = _separable()
    rule = choose_thresholds(scores, returns, target="direction", cost_bps=1, allow_short=False)
    assert rule == Thresholds(buy=median, sell=0.5)


@pytest.mark.parametrize("allow_short", [True, False])
def test_each_fold_is_a_seeded_model_fitted_on_its_rows_alone(allow_short):
    """The run equals, fold by fold, a fresh seeded pipeline fitted on the fold's rows (a random
    forest, whose result depends on the seed), thresholds chosen on its validation scores."""
    rng = np.random.default_rng(6)
    n, seed = 560, 11
    X = rng.normal(size=(n, 4))
    returns = 0.01 * X[:, 0] + rng.normal(0, 0.01, n)
    y = (returns > 0).astype(float)
    config = WalkForwardConfig(min_train=300, refit_every=120, allow_short=allow_short)
    run = run_walk_forward(
        X, y, returns, target="direction", model_type="rf", horizon=1, seed=seed, cost_bps=2.0,
        config=config,
    )  # fmt: skip
    assert len(run.folds) == 3
    for number, fold in enumerate(run.folds):
        scored = {}
        for rows, block in ((fold.fit, fold.validation), (fold.train, fold.test)):
            fitted = slice(rows.start, rows.stop)
            model = make_pipeline("rf", "direction", seed).fit(X[fitted], y[fitted])
            scored[block] = model.predict_proba(X[block.start : block.stop])[:, 1]
        rule = choose_thresholds(
            scored[fold.validation], returns[fold.validation.start : fold.validation.stop],
            target="direction", cost_bps=2.0, allow_short=allow_short,
        )  # fmt: skip
        assert run.thresholds[number] == rule
        offset = sum(len(f.test) for f in run.folds[:number])
        part = slice(offset, offset + len(fold.test))
        np.testing.assert_array_equal(run.scores[part], scored[fold.test])
        short = -1.0 if allow_short else 0.0
        test_scores = scored[fold.test]
        expected = np.where(
            test_scores >= rule.buy, 1.0, np.where(test_scores <= rule.sell, short, 0.0)
        )
        np.testing.assert_array_equal(run.positions[part], expected)


def test_the_first_test_sample_comes_after_min_train_and_the_purge():
    config = WalkForwardConfig(min_train=300, refit_every=50)
    with pytest.raises(BadInput, match="302 labelled samples are too few"):
        make_folds(302, horizon=2, config=config)  # no sample left to test
    (fold,) = make_folds(303, horizon=2, config=config)
    assert fold.test == range(302, 303)
