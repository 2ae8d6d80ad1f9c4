from __future__ import annotations

from pathlib import Path

import pytest

from bot.contracts import ConfigError, Settings, load_settings, service_settings
from bot.contracts.settings import SECRETS


def test_defaults_are_usable_for_development(settings) -> None:
    assert settings.bootstrap == "localhost:9092"
    assert settings.topics.alerts.endswith(".alerts")
    assert settings.symbols == ["SPX", "NDX"]


def test_comma_separated_lists_and_upper_case_symbols(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITFF_SYMBOLS", "spx, ndx ,btcusdt")
    assert load_settings().symbols == ["SPX", "NDX", "BTCUSDT"]


def test_placeholder_secrets_refused_in_production() -> None:
    with pytest.raises(ConfigError, match="ITFF_TRADINGVIEW_PASSPHRASE"):
        service_settings("webhook", env="production")


def test_bad_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="ITFF_KAFKA_PORT"):
        load_settings(kafka_port="not-a-port")


def test_webhook_secret_must_look_like_standard_webhooks() -> None:
    with pytest.raises(ConfigError, match="whsec_"):
        load_settings(webhook_secret="plain")
    with pytest.raises(ConfigError, match="'whsec_' without a key"):
        load_settings(webhook_secret="whsec_")
    with pytest.raises(ConfigError, match="not 'whsec_' followed by base64"):
        load_settings(webhook_secret="whsec_not-base64!")
    rotated = load_settings(webhook_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_b2xk")
    assert len(rotated.webhook_secrets) == 2


def test_bootstrap_override_means_no_local_broker() -> None:
    settings = load_settings(kafka_bootstrap="broker:29092")
    assert settings.bootstrap == "broker:29092"
    assert not settings.uses_local_kafka


def test_itff_home_is_the_base_of_every_relative_path(tmp_path: Path) -> None:
    home = tmp_path / "itff"
    settings = Settings(
        home=home,
        report_dir=tmp_path / "elsewhere",  # absolute: left alone
        database_url="sqlite+aiosqlite:///var/itff.db",
        data_source="csv:data/sample",
    )
    assert settings.artifact_dir == home / "artifacts"
    assert settings.log_dir == home / "logs"
    assert settings.kafka_data_dir == home / "var" / "kafka"
    assert settings.report_dir == tmp_path / "elsewhere"
    assert settings.database_url == f"sqlite+aiosqlite:///{home / 'var' / 'itff.db'}"
    assert settings.data_source == f"csv:{home / 'data' / 'sample'}"
    postgres = Settings(home=home, database_url="postgresql+asyncpg://u:p@db/itff")
    assert postgres.database_url == "postgresql+asyncpg://u:p@db/itff"
    assert Settings().artifact_dir == Path("artifacts")  # no ITFF_HOME: the working folder


def test_blank_values_are_unset_for_every_optional_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`cp .env.example .env` leaves `ITFF_X=` lines; compose passes `${ITFF_X:-}` as empty."""
    for name in Settings.model_fields:
        if name not in SECRETS:
            monkeypatch.setenv(f"ITFF_{name.upper()}", "  ")
    settings = load_settings()
    for name in Settings.model_fields:
        if name not in SECRETS:
            assert getattr(settings, name) == getattr(Settings(), name), name
    assert settings.kafka_bootstrap is None


@pytest.mark.parametrize("env", ["development", "production", "test"])
@pytest.mark.parametrize("secret", [name.upper() for name in SECRETS])
def test_an_empty_secret_is_refused_in_every_environment_naming_it(
    monkeypatch: pytest.MonkeyPatch, env: str, secret: str
) -> None:
    monkeypatch.setenv("ITFF_ENV", env)
    monkeypatch.setenv(f"ITFF_{secret}", "")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value).startswith(f"invalid configuration: ITFF_{secret}: ")
    assert "is set but empty" in str(refused.value)


def test_every_secret_setting_is_in_the_list_of_secrets() -> None:
    typed = {name for name, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)}
    assert typed == set(SECRETS)
