"""`POST /webhook`: Standard Webhooks signatures (the library signs, the receiver verifies)."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from tests.support.webhook import (
    MakeReceiver,
    at_offset,
    dumps,
    new_secret,
    signed_headers,
    tv_message,
)

URL = "/webhook"


def _body() -> str:
    return dumps(tv_message(passphrase=...))


async def test_valid_signature_is_accepted_and_the_alert_id_is_the_namespaced_webhook_id(
    receiver: MakeReceiver, webhook_secret: str
) -> None:
    client = await receiver()
    body = _body()
    headers = signed_headers(body, webhook_secret, msg_id="msg_2f1c9a0b7d")
    response = await client.post(URL, data=body, headers=headers)
    assert response.status == 202
    assert (await response.json())["alert_id"] == "signed:msg_2f1c9a0b7d"


async def test_tampered_body_is_401(receiver: MakeReceiver, webhook_secret: str) -> None:
    client = await receiver()
    body = _body()
    headers = signed_headers(body, webhook_secret)
    response = await client.post(URL, data=body.replace("105.0", "106.0"), headers=headers)
    assert response.status == 401
    assert "no webhook-signature matches" in (await response.json())["detail"]


async def test_wrong_secret_is_401(receiver: MakeReceiver) -> None:
    client = await receiver()
    body = _body()
    response = await client.post(URL, data=body, headers=signed_headers(body, new_secret()))
    assert response.status == 401


async def test_expired_timestamp_is_401(receiver: MakeReceiver, webhook_secret: str) -> None:
    client = await receiver()
    body = _body()
    headers = signed_headers(body, webhook_secret, at=at_offset(minutes=-6))
    response = await client.post(URL, data=body, headers=headers)
    assert response.status == 401
    assert "expired" in (await response.json())["detail"]


async def test_timestamp_from_the_future_is_401(
    receiver: MakeReceiver, webhook_secret: str
) -> None:
    client = await receiver()
    body = _body()
    headers = signed_headers(body, webhook_secret, at=at_offset(minutes=6))
    response = await client.post(URL, data=body, headers=headers)
    assert response.status == 401
    assert "future" in (await response.json())["detail"]


async def test_within_tolerance_is_accepted(receiver: MakeReceiver, webhook_secret: str) -> None:
    client = await receiver()
    body = _body()
    headers = signed_headers(body, webhook_secret, at=at_offset(minutes=-4))
    assert (await client.post(URL, data=body, headers=headers)).status == 202


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
async def test_missing_header_is_named(
    receiver: MakeReceiver, webhook_secret: str, header: str
) -> None:
    client = await receiver()
    body = _body()
    headers = signed_headers(body, webhook_secret)
    del headers[header]
    response = await client.post(URL, data=body, headers=headers)
    assert response.status == 401
    assert (await response.json())["detail"] == f"missing header(s): {header}"


async def test_malformed_signature_header_is_401(
    receiver: MakeReceiver, webhook_secret: str
) -> None:
    client = await receiver()
    body = _body()
    headers = signed_headers(body, webhook_secret) | {"webhook-signature": "v1"}
    response = await client.post(URL, data=body, headers=headers)
    assert response.status == 401
    assert "malformed" in (await response.json())["detail"]


async def test_rotated_secrets_old_and_new_both_verify(receiver: MakeReceiver) -> None:
    old, new = new_secret(), new_secret()
    client = await receiver(webhook_secret=SecretStr(f"{new} {old}"))
    for secret in (old, new):
        body = _body()
        response = await client.post(URL, data=body, headers=signed_headers(body, secret))
        assert response.status == 202, await response.text()


async def test_several_signatures_one_of_them_valid(
    receiver: MakeReceiver, webhook_secret: str
) -> None:
    client = await receiver()
    body = _body()
    headers = signed_headers(body, webhook_secret, msg_id="msg_rotation_1")
    stale = signed_headers(body, new_secret(), msg_id="msg_rotation_1")["webhook-signature"]
    headers["webhook-signature"] = f"{stale} {headers['webhook-signature']}"
    assert (await client.post(URL, data=body, headers=headers)).status == 202


async def test_replayed_signed_request_is_a_duplicate(
    receiver: MakeReceiver, webhook_secret: str
) -> None:
    client = await receiver()
    body = _body()
    headers = signed_headers(body, webhook_secret, msg_id="msg_replayed_0001")
    first = await client.post(URL, data=body, headers=headers)
    again = await client.post(URL, data=body, headers=headers)
    assert (first.status, again.status) == (202, 200)
    assert await again.json() == {"alert_id": "signed:msg_replayed_0001", "status": "duplicate"}


async def test_signed_endpoint_disabled_without_a_secret(receiver: MakeReceiver) -> None:
    client = await receiver(webhook_secret=None)
    body = _body()
    response = await client.post(URL, data=body, headers=signed_headers(body, new_secret()))
    assert response.status == 401
    assert "ITFF_WEBHOOK_SECRET" in (await response.json())["detail"]


async def test_short_webhook_id_is_422_naming_the_header(
    receiver: MakeReceiver, webhook_secret: str
) -> None:
    client = await receiver()
    body = _body()
    response = await client.post(
        URL, data=body, headers=signed_headers(body, webhook_secret, msg_id="m1")
    )
    assert response.status == 422
    assert json.loads(await response.text())["detail"][0]["field"] == "webhook-id"


async def test_signed_bad_field_is_422_after_a_valid_signature(
    receiver: MakeReceiver, webhook_secret: str
) -> None:
    client = await receiver()
    body = dumps(tv_message(passphrase=..., volume=-5))
    response = await client.post(URL, data=body, headers=signed_headers(body, webhook_secret))
    assert response.status == 422
    assert [e["field"] for e in (await response.json())["detail"]] == ["volume"]
