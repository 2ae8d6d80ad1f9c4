"""Request authentication: the TradingView passphrase, Standard Webhooks signatures, the API token.

Secrets are compared in constant time; the signature scheme is verified by the maintained
`standardwebhooks` library (HMAC-SHA256 of `id.timestamp.body`, 5-minute tolerance), tried with each
configured secret so a secret can be rotated without downtime.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import NamedTuple

from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bot.contracts import ConfigError
from producers.responses import ApiError

SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_LIBRARY_REASONS = {
    "Message timestamp too old": "webhook-timestamp is more than 5 minutes in the past (expired)",
    "Message timestamp too new": "webhook-timestamp is more than 5 minutes in the future",
    "Invalid Signature Headers": "webhook-timestamp is not a number of seconds since the epoch",
    "No matching signature found": "no webhook-signature matches the body with any configured "
    "secret (wrong secret, or the body was changed)",
}


def _equal(given: str, expected: str) -> bool:
    """Constant-time; any text compares (a header aiohttp decoded with surrogate escapes too)."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def check_passphrase(given: SecretStr | None, expected: SecretStr) -> None:
    if given is None:
        raise ApiError(401, "unauthorized", "the field 'passphrase' is missing from the alert")
    if not _equal(given.get_secret_value(), expected.get_secret_value()):
        raise ApiError(
            401, "unauthorized", "wrong passphrase: use ITFF_TRADINGVIEW_PASSPHRASE's value"
        )


def check_api_token(given: str | None, expected: SecretStr) -> None:
    if not given:
        raise ApiError(401, "unauthorized", "the X-API-Token header is missing")
    if not _equal(given, expected.get_secret_value()):
        raise ApiError(401, "unauthorized", "wrong X-API-Token: use ITFF_API_TOKEN's value")


def _fingerprint(secret: str) -> str:
    """The name of a signing secret in limits and logs: never the secret itself."""
    return "secret-" + hashlib.sha256(secret.encode()).hexdigest()[:8]


class Verified(NamedTuple):
    webhook_id: str
    credential: str  # the matching secret's fingerprint: the key of its rate limit


class SignatureVerifier:
    """Standard Webhooks verification against every configured `whsec_...` secret."""

    def __init__(self, secrets: list[str]) -> None:
        try:
            self._webhooks = [(Webhook(secret), _fingerprint(secret)) for secret in secrets]
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(
                "ITFF_WEBHOOK_SECRET: each secret must be 'whsec_' + base64 bytes"
            ) from exc

    @property
    def configured(self) -> bool:
        return bool(self._webhooks)

    def verify(self, body: bytes, headers: Mapping[str, str]) -> Verified:
        """The verified `webhook-id` and the secret that matched (checked on the raw body,
        before any JSON is built), or `ApiError` 401 saying what was wrong."""
        if not self._webhooks:
            raise ApiError(
                401, "unauthorized", "signed webhooks are disabled: set ITFF_WEBHOOK_SECRET"
            )
        wanted = {name: headers.get(name, "") for name in SIGNATURE_HEADERS}
        missing = [name for name, value in wanted.items() if not value]
        if missing:
            raise ApiError(401, "unauthorized", f"missing header(s): {', '.join(missing)}")
        reasons = []
        for webhook, credential in self._webhooks:
            if not (reason := self._try(webhook, body, wanted)):
                return Verified(wanted["webhook-id"], credential)
            reasons.append(reason)
        raise ApiError(401, "unauthorized", reasons[-1])  # every secret tried: the last reason

    @staticmethod
    def _try(webhook: Webhook, body: bytes, headers: dict[str, str]) -> str:
        try:
            webhook.verify(body, headers, json_parse=False)
        except WebhookVerificationError as exc:
            return _LIBRARY_REASONS.get(str(exc), str(exc))
        except (ValueError, binascii.Error):
            return "webhook-signature is malformed: expected 'v1,<base64>' (space-separated)"
        return ""
