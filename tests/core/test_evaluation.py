"""The evaluation report: every figure recomputed by hand from the walk-forward's test bars."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bot.contracts import BadInput
from bot.core import Combination, WalkForwardConfig, evaluate_model, make_dataset, run_walk_forward
from bot.core.evaluation import (
    EvaluationReport,
    baseline_metrics,
    evaluate_dataset,
    prediction_metrics,
)
from bot.core.sequences import Dataset
from bot.data import load_bars
from tests.conftest import SAMPLE_DIR

CONFIG = WalkForwardConfig(min_train=300, refit_every=150)
PER_YEAR_4H = 365 * 6  # 4-hour bars trade around the clock


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return load_bars(f"csv:{SAMPLE_DIR}", "SPX").iloc[-640:]


def by_hand(positions, returns, cost_bps: float, per_year: float) -> dict[str, float]:
    """Strategy return p_k r_k - cost |p_k - p_(k-1)| (p_(-1) = 0) and three of its figures."""
    strat, previous = [], 0.0
    for p, r in zip(positions, returns, strict=True):
        strat.append(p * r - cost_bps / 10_000 * abs(p - previous))
        previous = p
    n, mean = len(strat), sum(strat) / len(strat)
    sd = math.sqrt(sum((s - mean) ** 2 for s in strat) / (n - 1))
    return {
        "total_return": math.prod(1 + s for s in strat) - 1,
        "sharpe": mean / sd * math.sqrt(per_year),
        "exposure": sum(p != 0 for p in positions) / n,
        "n_trades": float(
            sum(1 for i, p in enumerate(positions) if p and (i == 0 or p != positions[i - 1]))
        ),
    }


def assert_figures(metrics, expected) -> None:
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


@pytest.mark.parametrize("allow_short", [True, False])
def test_model_and_baseline_figures_recomputed_from_the_test_bars(bars, allow_short):
    ds = make_dataset(bars, lookback=1, horizon=1, target="direction")
    config = WalkForwardConfig(min_train=300, refit_every=100, allow_short=allow_short)
    report, run = evaluate_dataset(
        ds, combination=Combination("SPX", "direction", "rf"), lookback=1, horizon=1,
        interval="4h", seed=9, cost_bps=3.0, config=config,
    )  # fmt: skip
    n = ds.n_labelled
    alone = run_walk_forward(
        ds.X[:n], ds.y[:n], ds.next_returns[:n], target="direction", model_type="rf", horizon=1,
        seed=9, cost_bps=3.0, config=config,
    )  # fmt: skip
    np.testing.assert_array_equal(run.scores, alone.scores)  # the seeded forest, fold by fold
    index = run.test_index
    np.testing.assert_array_equal(index, np.arange(301, ds.n_labelled))
    returns, up = ds.next_returns[index], ds.y[index] > 0
    # the model: positions of the walk-forward, accuracy of "score >= 0.5 means up"
    np.testing.assert_array_equal(report.equity["position"], run.positions)
    assert report.equity["time"].tolist() == list(ds.times[index])
    assert report.metrics["n"] == index.size
    assert report.metrics["accuracy"] == pytest.approx(np.mean((run.scores >= 0.5) == up))
    assert_figures(report.metrics, by_hand(list(run.positions), list(returns), 3.0, PER_YEAR_4H))
    # the baselines on the same bars
    persistence = np.where(ds.last_returns[index] > 0, 1.0, -1.0)
    coin = np.random.default_rng(9).choice([-1.0, 1.0], size=index.size)
    for name, calls in (("buy_and_hold", np.ones(index.size)), ("persistence", persistence),
                        ("random", coin)):  # fmt: skip
        held = calls if allow_short else np.maximum(calls, 0.0)
        figures = report.baselines[name]
        assert figures["accuracy"] == pytest.approx(np.mean((calls > 0) == up)), name
        assert figures["n"] == index.size
        assert_figures(figures, by_hand(list(held), list(returns), 3.0, PER_YEAR_4H))
    # one set of figures per test block, in time order
    assert report.n_folds == len(run.folds) == len(report.fold_metrics) == 3
    for fold, figures in zip(run.folds, report.fold_metrics, strict=True):
        part = slice(fold.test.start - 301, fold.test.stop - 301)
        assert figures["n"] == len(fold.test)
        assert figures["accuracy"] == pytest.approx(np.mean((run.scores[part] >= 0.5) == up[part]))
        expected = by_hand(list(run.positions[part]), list(returns[part]), 3.0, PER_YEAR_4H)
        assert_figures(figures, expected)
    assert report.thresholds == run.thresholds


def test_the_report_names_its_model_and_test_window(bars):
    report = evaluate_model(
        bars, symbol="spx", target="return", model_type="ridge", lookback=2, horizon=3,
        interval="4h", seed=1, cost_bps=0.5, config=CONFIG,
    )  # fmt: skip
    times = report.equity["time"]
    assert report.to_dict() == {
        "key": "SPX-return-ridge",
        "symbol": "SPX",
        "target": "return",
        "model_type": "ridge",
        "interval": "4h",
        "lookback": 2,
        "horizon": 3,
        "test_start": times.iloc[0].isoformat(),
        "test_end": times.iloc[-1].isoformat(),
        "n_folds": report.n_folds,
        "metrics": report.metrics,
        "baselines": report.baselines,
    }
    ds = make_dataset(bars, lookback=2, horizon=3, target="return")
    assert times.iloc[0] == ds.times[300 + 3]  # min_train samples, then a purge of the horizon
    assert times.iloc[-1] == ds.times[ds.n_labelled - 1]
    assert report.n_folds == math.ceil((ds.n_labelled - 303) / 150)
    assert set(report.metrics) >= {"mae", "rmse", "accuracy", "sharpe"}
    assert report.metrics["n"] == len(times)


def test_prediction_metrics_read_a_probability_of_exactly_one_half_as_up():
    y = np.array([1.0, 0.0, 1.0, 0.0])
    metrics = prediction_metrics("direction", y, np.array([0.5, 0.2, 0.9, 0.1]))
    assert metrics["accuracy"] == 1.0  # 0.5 is an up call, and right here
    assert metrics["roc_auc"] == 1.0
    returns = prediction_metrics("return", np.array([0.01, -0.02]), np.array([0.02, 0.01]))
    assert returns["mae"] == pytest.approx(0.02)
    assert returns["accuracy"] == 0.5


def test_the_defaults_are_one_bar_daily_seed_42_and_one_basis_point(bars):
    report = evaluate_model(bars, symbol="SPX", target="direction", model_type="rf", config=CONFIG)
    ds = make_dataset(bars, lookback=1, horizon=1, target="direction")
    explicit, _ = evaluate_dataset(
        ds, combination=Combination("SPX", "direction", "rf"), lookback=1, horizon=1,
        interval="1D", seed=42, cost_bps=1.0, config=CONFIG,
    )  # fmt: skip
    assert report.to_dict() == explicit.to_dict()
    assert (report.interval, report.lookback, report.horizon) == ("1D", 1, 1)


def test_a_report_without_test_bars_has_no_test_window():
    empty = pd.DataFrame({"time": pd.DatetimeIndex([], tz="UTC")})
    report = EvaluationReport(
        symbol="SPX", target="direction", model_type="ridge", interval="1D", lookback=1,
        horizon=1, metrics={}, baselines={}, equity=empty,
    )  # fmt: skip
    assert (report.to_dict()["test_start"], report.to_dict()["test_end"]) == (None, None)


def test_a_flat_bar_is_a_down_call_for_the_persistence_baseline():
    # last returns +1 %, 0, -2 %: persistence goes long, then short twice
    ds = Dataset(
        X=np.zeros((3, 1)), y=np.array([1.0, 0.0, 0.0]), times=pd.date_range("2024", periods=3),
        next_returns=np.array([0.01, -0.01, -0.02]), last_returns=np.array([0.01, 0.0, -0.02]),
        n_labelled=3,
    )  # fmt: skip
    out = baseline_metrics(ds, np.arange(3), seed=0, cost_bps=0, interval="1D", short=True)
    assert out["persistence"]["accuracy"] == 1.0
    assert out["persistence"]["total_return"] == pytest.approx(1.01 * 1.01 * 1.02 - 1)


@pytest.mark.parametrize(
    ("target", "model_type", "match"),
    [("bogus", "ridge", "^unknown target 'bogus'"), ("return", "logreg", "cannot predict")],
)
def test_a_wrong_request_is_named_before_the_bars_are_looked_at(bars, target, model_type, match):
    with pytest.raises(BadInput, match=match):
        evaluate_model(bars.iloc[:5], symbol="SPX", target=target, model_type=model_type)
