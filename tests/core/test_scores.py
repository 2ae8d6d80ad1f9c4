"""Metric functions over plain arrays: known values and undefined cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bot.contracts import BadInput
from bot.core import binance_interval, parse_interval, periods_per_year, scores


def test_wilson_interval_known_values():
    low, high = scores.wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4)
    assert high == pytest.approx(0.5962, abs=1e-4)
    low, high = scores.wilson_interval(0, 10)
    assert low == 0.0
    assert high == pytest.approx(0.2775, abs=1e-4)
    assert scores.wilson_interval(0, 0) is None


def test_directional_accuracy_counts_hits_with_interval():
    result = scores.directional_accuracy([1, 0, 1, 1], [1, 1, 1, 0])
    assert result["accuracy"] == 0.5
    assert result["accuracy_ci_low"] < 0.5 < result["accuracy_ci_high"]
    assert result["n"] == 4


def test_classification_metrics_match_hand_counts():
    actual = np.array([1, 1, 0, 0, 1])
    predicted = np.array([1, 0, 1, 0, 1])
    score = np.array([0.9, 0.4, 0.6, 0.2, 0.8])
    m = scores.classification_metrics(actual, predicted, score)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["roc_auc"] == pytest.approx(5 / 6)
    assert scores.roc_auc([1, 1], [0.2, 0.3]) is None  # one class: undefined


def test_regression_metrics():
    m = scores.regression_metrics([0.01, -0.02, 0.03], [0.02, -0.01, -0.01])
    assert m["mae"] == pytest.approx(0.02)
    assert m["rmse"] == pytest.approx(math.sqrt((0.0001 + 0.0001 + 0.0016) / 3))
    assert m["accuracy"] == pytest.approx(2 / 3)


def test_risk_metrics_known_values():
    r = np.array([0.01, -0.02, 0.03, 0.0])
    assert scores.sharpe(r, 252) == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252))
    assert scores.sortino(r, 252) == pytest.approx(
        r.mean() / math.sqrt(0.0004 / 4) * math.sqrt(252)
    )
    assert scores.sharpe(np.zeros(5), 252) is None
    equity = np.array([1.1, 0.99, 1.2, 0.6])
    assert scores.max_drawdown(equity) == pytest.approx(0.5)
    assert scores.max_drawdown([0.9]) == pytest.approx(0.1)  # the start at 1 is a peak
    assert scores.cagr([1.21, 1.21 * 1.1], 1) == pytest.approx(1.331**0.5 - 1)
    assert scores.profit_factor([0.1, -0.05, 0.05]) == pytest.approx(3.0)
    assert scores.profit_factor([0.1]) is None
    assert scores.win_rate([0.1, -0.05, 0.0, 0.2]) == 0.5
    assert scores.exposure([0, 1, -1, 0]) == 0.5


def test_undefined_metrics_are_none_never_a_made_up_number():
    empty: list[float] = []
    assert scores.mae(empty, empty) is None
    assert scores.rmse(empty, empty) is None
    assert scores.roc_auc(empty, empty) is None
    assert scores.sharpe([0.01], 252) is None  # a sample standard deviation needs two values
    assert scores.sortino(empty, 252) is None
    assert scores.sortino([0.01, 0.0, 0.02], 252) is None  # no downside at all
    assert scores.max_drawdown(empty) is None
    assert scores.cagr(empty, 252) is None
    assert scores.exposure(empty) is None
    assert scores.profit_factor(empty) is None
    assert scores.win_rate(empty) is None
    none = dict.fromkeys(("accuracy", "accuracy_ci_low", "accuracy_ci_high"))
    assert scores.directional_accuracy(empty, empty) == none | {"n": 0.0}
    assert scores.classification_metrics(empty, empty, empty) == none | {
        "n": 0.0, "precision": None, "recall": None, "f1": None, "roc_auc": None,
    }  # fmt: skip


def test_metrics_at_their_edges_worked_out_by_hand():
    # two returns 0.01, 0.03: mean 0.02, sample sd 0.01 * sqrt(2); 4 periods a year -> x 2
    assert scores.sharpe([0.01, 0.03], 4) == pytest.approx(2 * math.sqrt(2))
    assert scores.max_drawdown([1.1, 1.2]) == 0.0  # never below a previous peak
    np.testing.assert_allclose(scores.equity_curve([0.1, -0.5]), [1.1, 0.55])
    assert scores.cagr([0.5, 0.0], 252) == -1.0  # everything lost
    assert scores.cagr([0.5, -0.2], 252) == -1.0  # more than everything (a short that ran away)
    assert scores.exposure([1, 1, 0, -1]) == 0.75
    assert scores.win_rate([0.1, 0.0, 0.0, 0.0]) == 0.25  # a flat trade is no win
    # p = 1 with n = 10: centre (1 + z^2/20) / (1 + z^2/10), half z^2/20 / (1 + z^2/10)
    z2 = scores.Z_95**2
    low, high = scores.wilson_interval(10, 10)
    assert low == pytest.approx((1 + z2 / 20 - z2 / 20) / (1 + z2 / 10))
    assert high == pytest.approx(1.0)
    assert high <= 1.0
    # 16 of 16: the formula rounds to 1.0000000000000002 in floats; a share stays within [0, 1]
    assert scores.wilson_interval(16, 16)[1] == 1.0
    # a single success: the same algebra gives a lower bound of 1 / (1 + z^2)
    assert scores.wilson_interval(1, 1) == (pytest.approx(1 / (1 + z2)), pytest.approx(1.0))


def test_a_growth_rate_too_large_for_a_float_is_undefined():
    with np.errstate(over="ignore"):  # 1e10 ** 1e6 overflows to inf
        assert scores.cagr([1e10], 1e6) is None


def test_decimal_returns_from_a_numeric_database_column_are_read_as_floats():
    from decimal import Decimal

    returns = [0.01, -0.02, 0.03, 0.0]
    decimals = [Decimal(str(r)) for r in returns]
    np.testing.assert_allclose(scores.equity_curve(decimals), scores.equity_curve(returns))
    for metric in (scores.sharpe, scores.sortino):
        assert metric(decimals, 252) == pytest.approx(metric(returns, 252))
    assert scores.max_drawdown([Decimal("1.1"), Decimal("0.99")]) == pytest.approx(0.1)
    assert scores.cagr([Decimal("1.21"), Decimal("1.331")], 1) == pytest.approx(1.331**0.5 - 1)


def test_zero_is_a_down_call_and_an_empty_up_class_scores_zero():
    # returns of exactly 0 are not up: the first pair is a correct "not up" call
    m = scores.regression_metrics([0.0, 0.01, -0.01], [-0.01, 0.02, 0.0])
    assert m["accuracy"] == 1.0
    # no up call at all: precision, recall and F1 are 0 (not 1, not undefined)
    m = scores.classification_metrics([1, 0, 1], [0, 0, 0])
    assert (m["precision"], m["recall"], m["f1"], m["roc_auc"]) == (0.0, 0.0, 0.0, None)
    assert m["accuracy"] == pytest.approx(1 / 3)
    m = scores.classification_metrics([1, 0, 1], [1, 1, 1], [0.9, 0.8, 0.7])
    assert (m["precision"], m["recall"], m["roc_auc"]) == (pytest.approx(2 / 3), 1.0, 0.5)
    assert m["f1"] == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("interval", "length", "per_year", "binance"),
    [
        ("1D", "1D", 252, "1d"),
        ("D", "1D", 252, "1d"),
        ("1W", "7D", 52, "1w"),
        ("4h", "4h", 365 * 6, "4h"),
        ("60", "1h", 365 * 24, "1h"),
        ("15m", "15min", 365 * 24 * 4, "15m"),
    ],
)
def test_intervals(interval, length, per_year, binance):
    import pandas as pd

    assert parse_interval(interval) == pd.Timedelta(length)
    assert periods_per_year(interval) == pytest.approx(per_year)
    assert binance_interval(interval) == binance


@pytest.mark.parametrize("bad", ["", "1M", "daily", "0h", "1x"])
def test_unknown_intervals_are_refused(bad):
    with pytest.raises(BadInput, match="interval"):
        parse_interval(bad)
