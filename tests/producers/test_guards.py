"""IP allowlist behind trusted proxies, rate limits, health/readiness, metrics."""

from __future__ import annotations

import json
import socket

import aiohttp
from pydantic import SecretStr

from producers.state import READINESS, SETTINGS
from tests.support.webhook import MakeReceiver, new_secret, signed_headers, tv_message

URL = "/webhook/tradingview"
TRADINGVIEW_IP = "52.89.214.238"


async def test_allowlist_refuses_an_address_not_listed(receiver: MakeReceiver) -> None:
    client = await receiver(ip_allowlist_enabled=True)
    response = await client.post(URL, json=tv_message())
    assert response.status == 403
    assert "127.0.0.1 is not in ITFF_IP_ALLOWLIST" in (await response.json())["detail"]


async def test_allowlist_admits_a_listed_address(receiver: MakeReceiver) -> None:
    client = await receiver(ip_allowlist_enabled=True, ip_allowlist=["127.0.0.0/8"])
    assert (await client.post(URL, json=tv_message())).status == 202


async def test_forwarded_address_is_honoured_from_a_trusted_proxy(receiver: MakeReceiver) -> None:
    client = await receiver(ip_allowlist_enabled=True, trusted_proxies=["127.0.0.1"])
    response = await client.post(
        URL, json=tv_message(), headers={"X-Forwarded-For": TRADINGVIEW_IP}
    )
    assert response.status == 202


async def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(
    receiver: MakeReceiver,
) -> None:
    client = await receiver(ip_allowlist_enabled=True, trusted_proxies=["10.0.0.0/8"])
    response = await client.post(
        URL, json=tv_message(), headers={"X-Forwarded-For": TRADINGVIEW_IP}
    )
    assert response.status == 403
    assert "127.0.0.1" in (await response.json())["detail"]


async def test_spoofed_left_entry_behind_a_trusted_proxy_is_ignored(
    receiver: MakeReceiver,
) -> None:
    client = await receiver(ip_allowlist_enabled=True, trusted_proxies=["127.0.0.1"])
    chain = f"{TRADINGVIEW_IP}, 203.0.113.9"  # the client forged the left one; the proxy added 203.
    response = await client.post(URL, json=tv_message(), headers={"X-Forwarded-For": chain})
    assert response.status == 403
    assert "203.0.113.9" in (await response.json())["detail"]


async def test_malformed_forwarded_for_from_a_trusted_proxy_is_400_json(
    receiver: MakeReceiver,
) -> None:
    client = await receiver(trusted_proxies=["127.0.0.1"])
    response = await client.post(URL, json=tv_message(), headers={"X-Forwarded-For": "not-an-ip"})
    assert response.status == 400
    assert "X-Forwarded-For" in (await response.json())["detail"]


async def test_allowlist_does_not_apply_to_the_signed_endpoint(receiver: MakeReceiver) -> None:
    client = await receiver(ip_allowlist_enabled=True)
    response = await client.post("/webhook", json=tv_message(passphrase=...))
    assert response.status == 401  # refused for its missing signature, not for its address


async def test_webhook_rate_limit_answers_429_with_retry_after(receiver: MakeReceiver) -> None:
    client = await receiver(webhook_rate_limit="2/minute")
    statuses = [
        (await client.post(URL, json=tv_message(time=f"2026-11-2{day}T00:00:00Z"))).status
        for day in (1, 2, 3)
    ]
    assert statuses == [202, 202, 429]
    limited = await client.post(URL, json=tv_message())
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    body = await limited.json()
    assert body["error"] == "rate_limited"
    assert "2/minute" in body["detail"]


async def test_a_flood_of_bad_passphrases_is_429_for_the_flooder_and_never_starves_alerts(
    receiver: MakeReceiver,
) -> None:
    """Behind a proxy every client shares the proxy's address: the junk of one must not use up
    the budget of the genuine alerts, even those from the same forwarded address."""
    client = await receiver(
        webhook_rate_limit="3/minute",
        auth_failure_rate_limit="5/minute",
        trusted_proxies=["127.0.0.1"],
    )
    flooder = {"X-Forwarded-For": TRADINGVIEW_IP}
    junk = [
        (await client.post(URL, json=tv_message(passphrase=f"guess-{n}"), headers=flooder)).status
        for n in range(20)
    ]
    assert junk == [401] * 5 + [429] * 15
    limited = await client.post(URL, data=b"{not json", headers=flooder)
    assert limited.status == 429
    assert (
        "failed (unauthenticated) requests from 52.89.214.238" in (await limited.json())["detail"]
    )
    genuine = [
        await client.post(URL, json=tv_message(time=f"2026-11-2{day}T00:00:00Z"), headers=flooder)
        for day in (1, 2, 3)
    ]
    assert [r.status for r in genuine] == [202, 202, 202]
    over = await client.post(URL, json=tv_message(time="2026-11-24T00:00:00Z"))
    assert over.status == 429  # the passphrase's own limit, whoever sends it
    assert "the TradingView passphrase" in (await over.json())["detail"]


async def test_authenticated_alerts_are_limited_per_credential_not_per_address(
    receiver: MakeReceiver, webhook_secret: str
) -> None:
    second = new_secret()
    client = await receiver(
        webhook_rate_limit="1/minute", webhook_secret=SecretStr(f"{webhook_secret} {second}")
    )
    statuses = []
    for secret in (webhook_secret, second, webhook_secret):
        body = json.dumps(tv_message(passphrase=..., time=f"2026-11-2{len(statuses)}T00:00:00Z"))
        response = await client.post("/webhook", data=body, headers=signed_headers(body, secret))
        statuses.append(response.status)
    assert statuses == [202, 202, 429]  # each secret has its budget; one address sent all three


async def test_predict_wrong_tokens_are_throttled_and_the_right_token_still_served(
    receiver: MakeReceiver,
) -> None:
    client = await receiver(api_rate_limit="2/minute", auth_failure_rate_limit="2/minute")
    wrong = [
        (await client.post("/predict", json={"symbol": "SPX"}, headers={"X-API-Token": "x"})).status
        for _ in range(4)
    ]
    assert wrong == [401, 401, 429, 429]
    token = {"X-API-Token": "test-api-token-0123456789"}
    served = [(await client.post("/predict", json={}, headers=token)).status for _ in range(3)]
    assert served == [422, 422, 429]  # authenticated: counted against the token's own limit
    webhook = await client.post(URL, json=tv_message())
    assert webhook.status == 202


async def test_health_is_up_and_readiness_reports_kafka_down_and_outbox_depth(
    receiver: MakeReceiver,
) -> None:
    client = await receiver()
    await client.post(URL, json=tv_message())
    health = await client.get("/health")
    ready = await client.get("/ready")
    assert (health.status, await health.json()) == (200, {"status": "ok"})
    assert ready.status == 503
    body = await ready.json()
    assert (body["status"], body["kafka"], body["outbox_depth"]) == ("degraded", False, 1)
    assert body["error"] == "kafka_unreachable"


async def test_readiness_answers_from_cached_state_without_the_kafka_address(
    receiver: MakeReceiver,
) -> None:
    client = await receiver()
    readiness = client.app[READINESS]
    bodies = [await (await client.get("/ready")).json() for _ in range(50)]
    assert readiness.probes <= 1, "a broker request per /ready call"
    assert {body["status"] for body in bodies} == {"degraded"}
    bootstrap = client.app[SETTINGS].bootstrap
    assert bootstrap not in json.dumps(bodies)
    assert bootstrap.split(":")[-1] not in bodies[0]["detail"]


async def test_metrics_are_on_a_loopback_listener_not_the_public_port(
    receiver: MakeReceiver,
) -> None:
    port = free_port()
    client = await receiver(webhook_metrics_port=port)
    await client.post(URL, json=tv_message())
    assert (await client.get("/metrics")).status == 404
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        assert 'itff_alerts_received_total{source="tradingview"} 1.0' in await response.text()
    outside = [address for address in local_addresses() if not address.startswith("127.")]
    for address in outside:  # the loopback default listens nowhere else
        with socket.socket() as sock:
            assert sock.connect_ex((address, port)) != 0, address


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def local_addresses() -> list[str]:
    import psutil

    return [
        item.address
        for items in psutil.net_if_addrs().values()
        for item in items
        if item.family == socket.AF_INET
    ]


async def test_metrics_count_outcomes_and_latency_by_route(receiver: MakeReceiver) -> None:
    port = free_port()
    client = await receiver(webhook_metrics_port=port)
    await client.post(URL, json=tv_message())
    await client.post(URL, json=tv_message())
    await client.post(URL, json=tv_message(passphrase="nope"))
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    assert response.status == 200
    assert response.content_type == "text/plain"
    expected = [
        'itff_api_request_latency_seconds_count{route="/webhook/tradingview",status="202"} 1.0',
        'itff_api_request_latency_seconds_count{route="/webhook/tradingview",status="200"} 1.0',
        'itff_api_request_latency_seconds_count{route="/webhook/tradingview",status="401"} 1.0',
        'itff_alerts_received_total{source="tradingview"} 3.0',
        'itff_alerts_accepted_total{delivery="queued",source="tradingview"} 1.0',
        'itff_alerts_duplicate_total{source="tradingview"} 1.0',
        'itff_alerts_rejected_total{reason="unauthorized"} 1.0',
        "itff_outbox_depth 1.0",
        "itff_kafka_connected 0.0",
        "itff_kafka_publish_latency_seconds_count 0.0",
    ]
    missing = [line for line in expected if line not in text]
    assert missing == []
