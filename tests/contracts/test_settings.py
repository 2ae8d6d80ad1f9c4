from __future__ import annotations

import pytest

from bot.contracts import ConfigError, load_settings


def test_defaults_are_usable_for_development(settings) -> None:
    assert settings.bootstrap == "localhost:9092"
    assert settings.topics.alerts.endswith(".alerts")
    assert settings.symbols == ["SPX", "NDX"]


def test_comma_separated_lists_and_upper_case_symbols(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITFF_SYMBOLS", "spx, ndx ,btcusdt")
    assert load_settings().symbols == ["SPX", "NDX", "BTCUSDT"]


def test_placeholder_secrets_refused_in_production() -> None:
    with pytest.raises(ConfigError, match="ITFF_TRADINGVIEW_PASSPHRASE"):
        load_settings(env="production")


def test_bad_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="ITFF_KAFKA_PORT"):
        load_settings(kafka_port="not-a-port")


def test_webhook_secret_must_look_like_standard_webhooks() -> None:
    with pytest.raises(ConfigError, match="whsec_"):
        load_settings(webhook_secret="plain")
    rotated = load_settings(webhook_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_b2xk")
    assert len(rotated.webhook_secrets) == 2


def test_bootstrap_override_means_no_local_broker() -> None:
    settings = load_settings(kafka_bootstrap="broker:29092")
    assert settings.bootstrap == "broker:29092"
    assert not settings.uses_local_kafka
