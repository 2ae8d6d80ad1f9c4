from __future__ import annotations

import math

import pytest

from bot.contracts import ConfigError
from bot.core import PromotionRule, decide

RULE = PromotionRule(min_improvement=0.0, sharpe_margin=0.25)


def _decide(target: str, challenger: dict, champion: dict | None, rule: PromotionRule = RULE):
    return decide(
        key=f"SPX-{target}-ridge",
        version="v2",
        target=target,
        challenger=challenger,
        champion=champion,
        champion_version=None if champion is None else "v1",
        rule=rule,
    )


def test_first_model_of_a_key_is_promoted() -> None:
    decision = _decide("direction", {"accuracy": 0.40}, None)
    assert decision.promote
    assert "first model" in decision.reason


def test_better_direction_challenger_is_promoted_and_worse_is_not() -> None:
    champion = {"recent_accuracy": 0.52, "recent_sharpe": 0.5}
    better = _decide("direction", {"recent_accuracy": 0.55, "recent_sharpe": 0.6}, champion)
    worse = _decide("direction", {"recent_accuracy": 0.51, "recent_sharpe": 0.9}, champion)
    assert better.promote
    assert (better.challenger_value, better.champion_value) == (0.55, 0.52)
    assert not worse.promote
    assert "does not beat" in worse.reason


def test_return_models_are_judged_on_mae_lower_is_better() -> None:
    champion = {"recent_mae": 0.010}
    assert _decide("return", {"recent_mae": 0.009}, champion).promote
    rejected = _decide("return", {"recent_mae": 0.011}, champion)
    assert not rejected.promote
    assert rejected.metric == "mae"


def test_a_tie_is_not_an_improvement() -> None:
    assert not _decide("direction", {"accuracy": 0.53}, {"accuracy": 0.53}).promote


def test_min_improvement_is_required() -> None:
    rule = PromotionRule(min_improvement=0.02)
    champion = {"recent_accuracy": 0.50}
    assert not _decide("direction", {"recent_accuracy": 0.515}, champion, rule).promote
    assert _decide("direction", {"recent_accuracy": 0.53}, champion, rule).promote


def test_sharpe_may_not_drop_by_more_than_the_margin() -> None:
    champion = {"recent_accuracy": 0.52, "recent_sharpe": 1.0}
    within = _decide("direction", {"recent_accuracy": 0.55, "recent_sharpe": 0.80}, champion)
    beyond = _decide("direction", {"recent_accuracy": 0.55, "recent_sharpe": 0.70}, champion)
    assert within.promote
    assert not beyond.promote
    assert "Sharpe" in beyond.reason


def test_recent_window_wins_over_overall_metric() -> None:
    champion = {"accuracy": 0.60, "recent_accuracy": 0.50}
    assert _decide("direction", {"accuracy": 0.55, "recent_accuracy": 0.52}, champion).promote


def test_missing_or_non_finite_metrics() -> None:
    assert not _decide("direction", {"accuracy": math.nan}, {"accuracy": 0.5}).promote
    assert not _decide("direction", {}, {"accuracy": 0.5}).promote
    assert _decide("direction", {"accuracy": 0.5}, {"accuracy": None}).promote


def test_unknown_target_and_bad_rule_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="no promotion metric"):
        _decide("volatility", {"accuracy": 0.5}, None)
    with pytest.raises(ConfigError, match="min_improvement"):
        PromotionRule(min_improvement=-0.1)


def test_decision_record_is_json_ready() -> None:
    record = _decide("return", {"mae": 0.01}, {"mae": 0.02}).as_record()
    assert record["decision"] == "promoted"
    assert record["champion_version"] == "v1"


# Written against the survivors of `make mutation` (bench/mutation.py): each pins a behaviour that
# a mutant changed without any test noticing.


def test_a_decision_carries_every_field_promoted_or_rejected() -> None:
    champion = {"recent_accuracy": 0.52}
    promoted = _decide("direction", {"recent_accuracy": 0.56}, champion)
    rejected = _decide("direction", {"recent_accuracy": 0.50}, champion)
    assert promoted.as_record() == {
        "version": "v2",
        "decision": "promoted",
        "reason": "accuracy 0.56 beats the champion's 0.52",
        "metric": "accuracy",
        "challenger": 0.56,
        "champion": 0.52,
        "champion_version": "v1",
    }
    assert rejected.as_record() == {
        "version": "v2",
        "decision": "rejected",
        "reason": "accuracy 0.5 does not beat the champion's 0.52 by more than 0",
        "metric": "accuracy",
        "challenger": 0.50,
        "champion": 0.52,
        "champion_version": "v1",
    }
    for decision in (promoted, rejected):
        assert (decision.key, decision.version) == ("SPX-direction-ridge", "v2")
    assert promoted.promote is True
    assert rejected.promote is False


def test_the_reasons_say_why_in_words() -> None:
    assert _decide("direction", {"accuracy": 0.4}, None).reason == "first model of this key"
    assert _decide("return", {}, {"mae": 0.1}).reason == "challenger has no out-of-sample mae"
    undefended = _decide("return", {"mae": 0.1}, {})
    assert undefended.reason == "champion v1 has no mae to defend"
    assert _decide("return", {"mae": 0.1}, {"mae": 0.2}).reason == (
        "mae 0.1 beats the champion's 0.2"
    )
    sharpe = _decide(
        "direction",
        {"recent_accuracy": 0.55, "recent_sharpe": 0.5},
        {"recent_accuracy": 0.52, "recent_sharpe": 1.0},
    )
    assert sharpe.reason == (
        "accuracy improves but Sharpe 0.500 is worse than the champion's 1.000 by more than 0.25"
    )


def test_a_champion_without_a_version_is_no_champion() -> None:
    decision = decide(
        key="SPX-direction-ridge",
        version="v2",
        target="direction",
        challenger={"accuracy": 0.1},
        champion={"accuracy": 0.9},
        champion_version=None,
        rule=RULE,
    )
    assert decision.promote is True
    assert decision.reason == "first model of this key"


def test_a_sharpe_drop_of_exactly_the_margin_is_allowed() -> None:
    champion = {"recent_accuracy": 0.5, "recent_sharpe": 1.0}
    assert _decide("direction", {"recent_accuracy": 0.6, "recent_sharpe": 0.75}, champion).promote


@pytest.mark.parametrize("value", [0.0, 0.5])
def test_zero_and_positive_rule_values_are_allowed(value: float) -> None:
    rule = PromotionRule(min_improvement=value, sharpe_margin=value)
    assert (rule.min_improvement, rule.sharpe_margin) == (value, value)


@pytest.mark.parametrize("value", [-0.1, math.inf, math.nan])
def test_negative_or_non_finite_rule_values_are_refused_by_name(value: float) -> None:
    with pytest.raises(ConfigError) as improvement:
        PromotionRule(min_improvement=value)
    assert str(improvement.value) == "the promotion min_improvement must be a finite number >= 0"
    with pytest.raises(ConfigError) as margin:
        PromotionRule(sharpe_margin=value)
    assert str(margin.value) == "the promotion sharpe_margin must be a finite number >= 0"
