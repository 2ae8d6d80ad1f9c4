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
