"""Targets and the live-against-backtest drift rule, pinned value by value (written against the
survivors of `make mutation`)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bot.contracts import BadInput
from bot.core import (
    SAME_PERIOD,
    STORED,
    compared,
    drift,
    gauge_values,
    make_target,
    neutral_score,
)
from bot.core.drift_rule import METRICS, gaps
from bot.core.targets import check_target, forward_log_return


def test_the_neutral_score_of_each_target() -> None:
    assert neutral_score("direction") == 0.5
    assert neutral_score("return") == 0.0


def test_a_flat_bar_is_not_an_up_move() -> None:
    close = np.array([100.0, 100.0, 101.0, 100.5])
    np.testing.assert_array_equal(
        make_target(close, target="direction", horizon=1), [0.0, 1.0, 0.0, np.nan]
    )


def test_prices_of_any_numeric_type_are_read_as_floats() -> None:
    close = np.array([100, 110, 121], dtype=object)  # e.g. a column built from parsed JSON
    np.testing.assert_allclose(
        forward_log_return(close, 1), [math.log(1.1), math.log(1.1), np.nan], equal_nan=True
    )


@pytest.mark.parametrize("horizon", [0, -2])
def test_a_horizon_under_one_bar_is_refused_with_its_value(horizon: int) -> None:
    with pytest.raises(BadInput) as error:
        forward_log_return(np.ones(5), horizon)
    assert str(error.value) == f"horizon must be at least 1 bar, got {horizon}"


def test_an_unknown_target_names_the_known_ones() -> None:
    message = "unknown target 'volatility'; use one of direction, return"
    with pytest.raises(BadInput) as made:
        make_target(np.ones(5), target="volatility", horizon=1)
    assert str(made.value) == message
    with pytest.raises(BadInput) as checked:
        check_target("volatility")
    assert str(checked.value) == message
    assert check_target("return") == "return"


def test_drift_names_each_rate_beyond_the_margin_in_points() -> None:
    live = {"accuracy": 0.375, "precision": 0.625, "recall": 0.5, "mae": 9.0}
    backtest = {"accuracy": 0.5, "precision": 0.6, "hit_rate": 0.1, "recall": 0.5, "mae": 1.0}
    assert drift(live, backtest, margin=0.05) == ["directional accuracy -12.5 pp"]
    assert drift(live, backtest, margin=0.01) == [
        "directional accuracy -12.5 pp",
        "precision +2.5 pp",
    ]
    assert drift(live, backtest, margin=0.125) == []  # exactly the margin is no drift
    assert drift({}, backtest, margin=0.0) == []  # nothing to compare


def test_metrics_are_read_under_their_aliases_and_only_when_finite_numbers() -> None:
    accuracy = METRICS[0]
    assert accuracy.read({"hit_rate": 0.6}) == 0.6
    assert accuracy.read({"accuracy": True, "directional_accuracy": 0.7}) == 0.7  # a bool is not
    assert accuracy.read({"accuracy": math.nan}) is None
    assert accuracy.read(None) is None
    assert gaps({"recall": 0.4}, {"recall": 0.5}) == {METRICS[2]: pytest.approx(-0.1)}


def test_the_gauge_needs_enough_resolved_signals() -> None:
    backtest = {"SPX-direction-logreg": {"accuracy": 0.55}, "NDX-direction-logreg": {"recall": 0.5}}
    live = {
        "SPX-direction-logreg": {"accuracy": 0.50, "signals": 20},
        "NDX-direction-logreg": {"recall": 0.1, "n": 19},
    }
    assert gauge_values(live, backtest) == {
        ("SPX-direction-logreg", "accuracy", "stored"): pytest.approx(0.05)
    }
    values = gauge_values(live, backtest, min_signals=19)
    assert values[("NDX-direction-logreg", "recall", "stored")] == pytest.approx(0.4)


def test_a_snapshot_without_a_signal_count_counts_none() -> None:
    backtest = {"SPX-direction-logreg": {"accuracy": 0.5}}
    live = {"SPX-direction-logreg": {"accuracy": 0.25}}
    assert gauge_values(live, backtest, min_signals=1) == {}


def test_the_gauge_compares_on_the_live_period_once_it_covers_enough_bars() -> None:
    backtest = {"SPX-direction-logreg": {"accuracy": 0.55}}
    live = {"SPX-direction-logreg": {"accuracy": 0.50, "signals": 25}}
    pair = {"live": {"accuracy": 0.52}, "batch": {"accuracy": 0.60, "signal_count": 20}}
    same = {"SPX-direction-logreg": pair}
    assert gauge_values(live, backtest, same_period=same) == {
        ("SPX-direction-logreg", "accuracy", "live_period"): pytest.approx(0.08)
    }
    thin = {"SPX-direction-logreg": pair | {"batch": {"accuracy": 0.60, "signal_count": 19}}}
    assert gauge_values(live, backtest, same_period=thin) == {
        ("SPX-direction-logreg", "accuracy", "stored"): pytest.approx(0.05)
    }
    # the gauge's own floor governs both: with a floor of 19, 19 bars of live period suffice
    assert gauge_values(live, backtest, same_period=thin, min_signals=19) == {
        ("SPX-direction-logreg", "accuracy", "live_period"): pytest.approx(0.08)
    }


def test_compared_says_which_comparison_it_chose() -> None:
    stored, live = {"accuracy": 0.55}, {"accuracy": 0.5}
    pair = {"live": {"accuracy": 0.52}, "batch": {"accuracy": 0.6, "n": 20}}
    chosen = compared(live, stored, pair)
    assert (chosen.name, chosen.label, chosen.bars) == (SAME_PERIOD, "live_period", 20)
    assert (chosen.judged, chosen.reference) == (pair["live"], pair["batch"])
    fallback = compared(live, stored, pair, min_bars=21)
    assert (fallback.name, fallback.label, fallback.bars) == (STORED, "stored", 20)
    assert (fallback.judged, fallback.reference) == (live, stored)
    assert compared(live, stored).bars == 0
