"""The receiver's credential checks as functions: the exact 401 each failure answers, and the
credential a signature is counted under. Written against the survivors of `make mutation`."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from producers.auth import (
    _LIBRARY_REASONS,
    SignatureVerifier,
    Verified,
    check_api_token,
    check_passphrase,
)
from producers.responses import ApiError
from tests.support.webhook import new_secret, signed_headers

TOKEN = SecretStr("test-api-token-0123456789")


def refusal(error: pytest.ExceptionInfo[ApiError]) -> tuple[int, str, str]:
    return error.value.status, error.value.error, error.value.detail


@pytest.mark.parametrize("given", [None, ""])
def test_a_missing_api_token_is_named(given: str | None) -> None:
    with pytest.raises(ApiError) as error:
        check_api_token(given, TOKEN)
    assert refusal(error) == (401, "unauthorized", "the X-API-Token header is missing")


def test_a_wrong_api_token_says_which_setting_holds_the_right_one() -> None:
    with pytest.raises(ApiError) as error:
        check_api_token("test-api-token-0123456780", TOKEN)
    assert refusal(error) == (
        401,
        "unauthorized",
        "wrong X-API-Token: use ITFF_API_TOKEN's value",
    )
    check_api_token(TOKEN.get_secret_value(), TOKEN)  # the right one passes


def test_passphrase_missing_or_wrong() -> None:
    expected = SecretStr("test-passphrase-0123456789")
    with pytest.raises(ApiError) as missing:
        check_passphrase(None, expected)
    assert refusal(missing) == (
        401,
        "unauthorized",
        "the field 'passphrase' is missing from the alert",
    )
    with pytest.raises(ApiError) as wrong:
        check_passphrase(SecretStr("nope"), expected)
    assert refusal(wrong)[2] == "wrong passphrase: use ITFF_TRADINGVIEW_PASSPHRASE's value"


def test_without_secrets_signed_webhooks_are_refused_with_the_setting_to_set() -> None:
    with pytest.raises(ApiError) as error:
        SignatureVerifier([]).verify(b"{}", signed_headers(b"{}", new_secret()))
    assert refusal(error) == (
        401,
        "unauthorized",
        "signed webhooks are disabled: set ITFF_WEBHOOK_SECRET",
    )


def test_missing_signature_headers_are_listed() -> None:
    secret = new_secret()
    headers = signed_headers(b"{}", secret)
    del headers["webhook-id"], headers["webhook-signature"]
    with pytest.raises(ApiError) as error:
        SignatureVerifier([secret]).verify(b"{}", headers)
    assert refusal(error) == (
        401,
        "unauthorized",
        "missing header(s): webhook-id, webhook-signature",
    )


def test_a_signature_of_another_secret_is_refused_saying_so() -> None:
    body = b'{"ticker": "SPX"}'
    with pytest.raises(ApiError) as error:
        SignatureVerifier([new_secret()]).verify(body, signed_headers(body, new_secret()))
    assert refusal(error) == (
        401,
        "unauthorized",
        _LIBRARY_REASONS["No matching signature found"],
    )


def test_the_matching_secret_is_the_credential_by_its_fingerprint() -> None:
    old, new = new_secret(), new_secret()
    body = b"not json: the signature covers the raw bytes"  # verified before any JSON is read
    verified = SignatureVerifier([old, new]).verify(body, signed_headers(body, new, msg_id="m-1"))
    fingerprint = "secret-" + hashlib.sha256(new.encode()).hexdigest()[:8]
    assert verified == Verified("m-1", fingerprint)


def test_a_malformed_signature_and_an_untranslated_library_reason() -> None:
    secret = new_secret()
    headers = signed_headers(b"{}", secret)
    malformed = headers | {"webhook-signature": "v1-no-comma"}
    with pytest.raises(ApiError) as error:
        SignatureVerifier([secret]).verify(b"{}", malformed)
    assert refusal(error)[2] == (
        "webhook-signature is malformed: expected 'v1,<base64>' (space-separated)"
    )
    # a reason the library gives that has no translation of ours is passed on as it is
    assert SignatureVerifier._try(Webhook(secret), b"{}", {}) == "Missing required headers"
