"""Walk-forward splits and the out-of-sample run: refit every k samples, purge, inner validation.

Samples are indexed in time order, one per bar; the label of sample i is known h bars after it.
For each test block `[s, s + k)`:

* training samples are `[start, s - purge)` (expanding: start = 0; rolling: the last `max_train`),
  with `purge >= horizon`, so no training label looks into the test block;
* inside the training range, the last `validation_fraction` is the inner validation block and the
  model that scores it is fitted on `[start, validation_start - purge)`; the decision thresholds are
  chosen on that validation block only;
* the model refitted on the whole training range scores the test block with those thresholds.

Every test sample is therefore scored by a model that never saw it, its label, or anything after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from bot.contracts import BadInput
from bot.core.backtesting import positions_from_scores, strategy_returns
from bot.core.bundle import Thresholds
from bot.core.estimators import make_pipeline, predict_scores
from bot.core.scores import sharpe
from bot.core.targets import neutral_score

FloatArray = NDArray[np.floating[Any]]
MIN_FIT_SAMPLES = 100
MIN_VALIDATION_SAMPLES = 30
QUANTILES = np.linspace(0.1, 0.9, 9)


@dataclass(frozen=True, slots=True)
class WalkForwardConfig:
    min_train: int = 1000  # samples before the first test block
    refit_every: int = 250  # test block length k: the model is refitted every k bars
    purge: int | None = None  # gap between training and test; None -> the horizon
    window: Literal["expanding", "rolling"] = "expanding"
    max_train: int | None = None  # rolling window length (default: min_train)
    validation_fraction: float = 0.2
    allow_short: bool = True  # False: long-flat, a sell signal only closes the position


@dataclass(frozen=True, slots=True)
class Fold:
    fit: range  # fits the model that scores the validation block
    validation: range  # chooses the thresholds
    train: range  # fits the model that scores the test block
    test: range


@dataclass(frozen=True, slots=True)
class WalkForwardResult:
    test_index: NDArray[np.intp]
    scores: FloatArray
    positions: FloatArray
    thresholds: tuple[Thresholds, ...]
    folds: tuple[Fold, ...]


def effective_purge(config: WalkForwardConfig, horizon: int) -> int:
    purge = horizon if config.purge is None else config.purge
    if purge < horizon:
        raise BadInput(f"purge gap {purge} is shorter than the horizon {horizon}; use >= {horizon}")
    return purge


def inner_split(train: range, *, purge: int, validation_fraction: float) -> tuple[range, range]:
    """Split a training range into (fit, validation) with a purge gap between them."""
    n_validation = max(MIN_VALIDATION_SAMPLES, int(len(train) * validation_fraction))
    validation = range(train.stop - n_validation, train.stop)
    fit = range(train.start, validation.start - purge)
    if len(fit) < MIN_FIT_SAMPLES:
        raise BadInput(
            f"a training window of {len(train)} samples leaves {len(fit)} to fit after the inner "
            f"validation block; use more bars (at least {MIN_FIT_SAMPLES + n_validation + purge})"
        )
    return fit, validation


def make_folds(n_samples: int, *, horizon: int, config: WalkForwardConfig) -> list[Fold]:
    """The walk-forward folds over `n_samples` labelled samples (see the module docstring)."""
    purge = effective_purge(config, horizon)
    if config.refit_every < 1:
        raise BadInput(f"refit_every must be at least 1 bar, got {config.refit_every}")
    first_test = config.min_train + purge
    if n_samples <= first_test:
        raise BadInput(
            f"{n_samples} labelled samples are too few for a walk-forward with min_train="
            f"{config.min_train} and purge={purge}; load more bars or lower min_train"
        )
    folds = []
    for test_start in range(first_test, n_samples, config.refit_every):
        train_stop = test_start - purge
        length = config.max_train or config.min_train
        start = 0 if config.window == "expanding" else max(0, train_stop - length)
        train = range(start, train_stop)
        fit, validation = inner_split(
            train, purge=purge, validation_fraction=config.validation_fraction
        )
        test = range(test_start, min(test_start + config.refit_every, n_samples))
        folds.append(Fold(fit=fit, validation=validation, train=train, test=test))
    return folds


def choose_thresholds(
    scores: FloatArray,
    next_returns: FloatArray,
    *,
    target: str,
    cost_bps: float,
    allow_short: bool,
) -> Thresholds:
    """The (sell, buy) pair with the best validation Sharpe among score quantiles and the centre.

    Candidates are the 10 %, ..., 90 % quantiles of the validation scores and the neutral score
    (0.5 for `direction`, 0 for `return`); ties keep the first, starting with the neutral pair.
    """
    centre = neutral_score(target)
    candidates = np.unique(np.concatenate(([centre], np.quantile(scores, QUANTILES))))
    best, best_value = Thresholds(buy=centre, sell=centre), -np.inf
    pairs = [(centre, centre)] + [(s, b) for s in candidates for b in candidates if s <= b]
    for sell, buy in pairs:
        thresholds = Thresholds(buy=float(buy), sell=float(sell))
        positions = positions_from_scores(scores, thresholds, allow_short=allow_short)
        strat = strategy_returns(positions, next_returns, cost_bps=cost_bps)
        value = sharpe(strat, 1.0)
        if value is not None and value > best_value:
            best, best_value = thresholds, value
    return best


def _fit_score(
    X: FloatArray,
    y: FloatArray,
    fit: range,
    score: range,
    *,
    target: str,
    model_type: str,
    seed: int,
) -> FloatArray:
    if target == "direction" and np.unique(y[fit.start : fit.stop]).size < 2:  # noqa: PLR2004
        raise BadInput("a training window holds only one direction class; use more bars")
    pipeline = make_pipeline(model_type, target, seed)
    pipeline.fit(X[fit.start : fit.stop], y[fit.start : fit.stop])
    return predict_scores(pipeline, X[score.start : score.stop], target)


def run_walk_forward(
    X: FloatArray,
    y: FloatArray,
    next_returns: FloatArray,
    *,
    target: str,
    model_type: str,
    horizon: int,
    seed: int,
    cost_bps: float,
    config: WalkForwardConfig,
) -> WalkForwardResult:
    """Out-of-sample scores and positions for every test block of `make_folds`."""
    folds = make_folds(len(y), horizon=horizon, config=config)
    scores, positions, chosen = [], [], []
    for fold in folds:
        validation_scores = _fit_score(
            X, y, fold.fit, fold.validation, target=target, model_type=model_type, seed=seed
        )
        thresholds = choose_thresholds(
            validation_scores,
            next_returns[fold.validation.start : fold.validation.stop],
            target=target,
            cost_bps=cost_bps,
            allow_short=config.allow_short,
        )
        test_scores = _fit_score(
            X, y, fold.train, fold.test, target=target, model_type=model_type, seed=seed
        )
        scores.append(test_scores)
        positions.append(
            positions_from_scores(test_scores, thresholds, allow_short=config.allow_short)
        )
        chosen.append(thresholds)
    test_index = np.concatenate([np.arange(f.test.start, f.test.stop) for f in folds])
    return WalkForwardResult(
        test_index=test_index,
        scores=np.concatenate(scores),
        positions=np.concatenate(positions),
        thresholds=tuple(chosen),
        folds=tuple(folds),
    )
