"""Production refuses to start a service without what it needs, or with weak secrets: one line
naming the variable, exit 2 (through the real `itff` command line)."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import pytest

from bot.contracts import ConfigError, service_settings
from bot.contracts.production import strong
from tests.support.cli import run_itff
from tests.support.env import child_env
from tests.support.keys import PUBLIC_KEY, SIGNING_KEY

STRONG = secrets.token_urlsafe(32)
WHSEC = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
GOOD = {
    "webhook": {
        "tradingview_passphrase": STRONG,
        "api_token": secrets.token_hex(32),
        "artifact_public_keys": PUBLIC_KEY,
    },
    "consumer": {"artifact_public_keys": PUBLIC_KEY},
    "scheduler": {"artifact_signing_key": SIGNING_KEY},
    "dashboard": {"dash_password": STRONG},
}


@pytest.mark.parametrize("service", list(GOOD))
def test_each_service_starts_with_exactly_what_it_needs(service: str) -> None:
    service_settings(service, env="production", **GOOD[service])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("service", "missing"),
    [
        ("webhook", "tradingview_passphrase"),
        ("webhook", "api_token"),
        ("webhook", "artifact_public_keys"),
        ("consumer", "artifact_public_keys"),
        ("scheduler", "artifact_signing_key"),
        ("dashboard", "dash_password"),
    ],
)
def test_a_service_missing_its_key_refuses_to_start(service: str, missing: str) -> None:
    given = {k: v for k, v in GOOD[service].items() if k != missing}
    with pytest.raises(ConfigError, match=f"ITFF_{missing.upper()} is not set: the {service}"):
        service_settings(service, env="production", **given)  # type: ignore[arg-type]
    service_settings(service, env="development", **given)  # type: ignore[arg-type]


@pytest.mark.parametrize("service", ["webhook", "consumer", "dashboard"])
def test_only_the_scheduler_may_hold_the_private_key(service: str) -> None:
    given = GOOD[service] | {"artifact_signing_key": SIGNING_KEY}
    with pytest.raises(ConfigError, match="ITFF_ARTIFACT_SIGNING_KEY is set on the"):
        service_settings(service, env="production", **given)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "weak",
    [
        "changethis-changethis-changethis-1234567890",
        "x",
        "0123456789abcdef",  # 16 hex characters: 64 bits
        secrets.token_hex(16),  # 128 bits
        "correct-horse-battery-staple-000",
        "a" * 80,
        "my-example-passphrase-" + secrets.token_urlsafe(32),
    ],
    ids=["placeholder", "one-char", "64-bit-hex", "128-bit-hex", "words", "repeated", "example"],
)
def test_weak_or_placeholder_secrets_are_refused(weak: str) -> None:
    assert not strong(weak)
    given = GOOD["dashboard"] | {"dash_password": weak}
    with pytest.raises(ConfigError, match="ITFF_DASH_PASSWORD is a placeholder or weaker"):
        service_settings("dashboard", env="production", **given)  # type: ignore[arg-type]


def test_random_secrets_of_32_bytes_pass() -> None:
    for _ in range(20):
        assert strong(secrets.token_urlsafe(32))
        assert strong(secrets.token_hex(32))
        assert strong(base64.b64encode(secrets.token_bytes(32)).decode())


@pytest.mark.parametrize("secret", ["whsec_changethis", "whsec_" + "QUFB" * 8])
def test_short_webhook_keys_are_refused_in_production(secret: str) -> None:
    given = GOOD["webhook"] | {"webhook_secret": f"{WHSEC} {secret}"}
    with pytest.raises(ConfigError, match="ITFF_WEBHOOK_SECRET holds a key shorter than 32 bytes"):
        service_settings("webhook", env="production", **given)  # type: ignore[arg-type]
    rotated = GOOD["webhook"] | {"webhook_secret": WHSEC}
    service_settings("webhook", env="production", **rotated)  # type: ignore[arg-type]


def test_plain_http_artifact_urls_are_refused_in_production() -> None:
    given = GOOD["consumer"] | {"artifact_base_url": "http://models.example.com/artifacts"}
    with pytest.raises(ConfigError, match="ITFF_ARTIFACT_BASE_URL must be an https:// URL"):
        service_settings("consumer", env="production", **given)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("command", "variables", "line"),
    [
        (
            "webhook",
            {"ITFF_WEBHOOK_SECRET": "whsec_"},
            (
                "itff: configuration error: invalid configuration: ITFF_WEBHOOK_SECRET: Value "
                "error, a secret is 'whsec_' without a key: each is 'whsec_' + a base64 key"
            ),
        ),
        (
            "consumer",
            {"ITFF_ARTIFACT_PUBLIC_KEYS": PUBLIC_KEY, "ITFF_ARTIFACT_SIGNING_KEY": SIGNING_KEY},
            (
                "itff: configuration error: refusing to start the consumer: "
                "ITFF_ARTIFACT_SIGNING_KEY is set on the consumer: only the scheduler signs; give "
                "this service ITFF_ARTIFACT_PUBLIC_KEYS and remove the private key from it"
            ),
        ),
        (
            "scheduler",
            {},
            (
                "itff: configuration error: refusing to start the scheduler: "
                "ITFF_ARTIFACT_SIGNING_KEY is not set: the scheduler needs it in production (the "
                "scheduler signs models and pointers with it (`itff artifacts keygen`))"
            ),
        ),
    ],
)
def test_the_command_line_refuses_with_one_line_and_exit_2(
    tmp_path: Path, command: str, variables: dict[str, str], line: str
) -> None:
    env = child_env(
        ITFF_ENV="production",
        ITFF_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'itff.db'}",
        ITFF_KAFKA_BOOTSTRAP="127.0.0.1:1",
        **variables,
    )
    result = run_itff(env, command, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == line
    assert "Traceback" not in result.stdout + result.stderr
