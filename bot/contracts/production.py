"""What each service needs to start in production, and the secrets too weak to run with.

`load_settings(service=...)` calls `production_problem` at each service's start-up: with
`ITFF_ENV=production` the first problem is raised as a `ConfigError` of one line naming the
variable (the CLI prints it and exits 2). Development and tests run with the defaults.
"""

from __future__ import annotations

import base64
import binascii
import math
import string
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from bot.contracts.settings import Settings

Service = Literal["webhook", "consumer", "scheduler", "dashboard"]
MIN_SECRET_BITS = 256  # 32 random bytes
MIN_DISTINCT_CHARACTERS = 12
GENERATE = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
PLACEHOLDERS = ("changethis", "changeme", "placeholder", "example", "secret", "password", "xxxx")

# the settings each service cannot run without in production
NEEDS: dict[Service, tuple[str, ...]] = {
    "webhook": ("tradingview_passphrase", "api_token", "artifact_public_keys"),
    "consumer": ("artifact_public_keys",),
    "scheduler": ("artifact_signing_key",),
    "dashboard": ("dash_password",),
}
WHY = {
    "tradingview_passphrase": "TradingView's alerts authenticate with it",
    "api_token": "POST /predict authenticates with it",
    "artifact_public_keys": "models are verified with it (`itff artifacts keygen`)",
    "artifact_signing_key": "the scheduler signs models and pointers with it "
    "(`itff artifacts keygen`)",
    "dash_password": "the dashboard's basic auth",
}
# random secrets chosen by the operator (a provider-issued S3 key and the transitional HMAC key
# are what they are)
STRONG = ("tradingview_passphrase", "api_token", "dash_password")


def production_problem(settings: Settings, service: Service) -> str | None:
    """The first reason `service` must not start in production, as one line; None when fine."""
    if settings.env != "production":
        return None
    for name in NEEDS[service]:
        if _unset(settings, name):
            return (
                f"ITFF_{name.upper()} is not set: the {service} needs it in production "
                f"({WHY[name]})"
            )
    if service != "scheduler" and settings.artifact_signing_key is not None:
        return (
            f"ITFF_ARTIFACT_SIGNING_KEY is set on the {service}: only the scheduler signs; give "
            "this service ITFF_ARTIFACT_PUBLIC_KEYS and remove the private key from it"
        )
    return _weak_secret(settings) or _plain_http(settings)


def _unset(settings: Settings, name: str) -> bool:
    value = getattr(settings, name)
    if name in STRONG and value is not None:
        return bool(value.get_secret_value() == "changethis")  # the development default
    return not value


def _weak_secret(settings: Settings) -> str | None:
    for name in STRONG:
        if _unset(settings, name):  # not needed by this service (else refused above)
            continue
        if not strong(getattr(settings, name).get_secret_value()):
            return (
                f"ITFF_{name.upper()} is a placeholder or weaker than 32 random bytes: generate "
                f"one with {GENERATE}"
            )
    for secret in settings.webhook_secrets:
        if len(webhook_key(secret)) < 32:  # noqa: PLR2004 - 32 bytes
            return (
                "ITFF_WEBHOOK_SECRET holds a key shorter than 32 bytes: generate one with "
                "python3 -c 'import base64, secrets; "
                'print("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())\''
            )
    return None


def _plain_http(settings: Settings) -> str | None:
    url = settings.artifact_base_url or ""
    if url and not url.lower().startswith("https://"):
        return (
            "ITFF_ARTIFACT_BASE_URL must be an https:// URL in production (plain http lets the "
            "network withhold or delay models): serve the bucket over HTTPS"
        )
    return None


def strong(secret: str) -> bool:
    """At least 256 bits by a generous estimate (length x log2 of the character classes used),
    enough distinct characters, and no placeholder word."""
    if any(word in secret.lower() for word in PLACEHOLDERS):
        return False
    if len(set(secret)) < MIN_DISTINCT_CHARACTERS:
        return False
    return len(secret) * math.log2(_alphabet(secret)) >= MIN_SECRET_BITS


def _alphabet(secret: str) -> int:
    if set(secret) <= set(string.hexdigits.lower()) or set(secret) <= set(string.hexdigits.upper()):
        return 16
    classes = (string.ascii_lowercase, string.ascii_uppercase, string.digits)
    size = sum(len(chars) for chars in classes if any(c in chars for c in secret))
    others = {c for c in secret if not any(c in chars for chars in classes)}
    return size + (32 if others else 0)


def webhook_key(secret: str) -> bytes:
    """The key bytes of a `whsec_...` secret; ValueError when it is not `whsec_` + base64."""
    body = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("is not 'whsec_' followed by base64") from exc
    if not key:
        raise ValueError("is 'whsec_' without a key")
    return key
