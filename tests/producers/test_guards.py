"""IP allowlist behind trusted proxies, rate limits, health/readiness, metrics."""

from __future__ import annotations

from tests.support.webhook import MakeReceiver, tv_message

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


async def test_rate_limit_is_per_client_address(receiver: MakeReceiver) -> None:
    client = await receiver(webhook_rate_limit="1/minute", trusted_proxies=["127.0.0.1"])
    first = await client.post(URL, json=tv_message(), headers={"X-Forwarded-For": "198.51.100.1"})
    other = await client.post(URL, json=tv_message(), headers={"X-Forwarded-For": "198.51.100.2"})
    again = await client.post(URL, json=tv_message(), headers={"X-Forwarded-For": "198.51.100.1"})
    assert (first.status, other.status, again.status) == (202, 200, 429)


async def test_predict_has_its_own_rate_limit(receiver: MakeReceiver) -> None:
    client = await receiver(api_rate_limit="1/minute")
    headers = {"X-API-Token": "wrong"}
    first = await client.post("/predict", json={"symbol": "SPX"}, headers=headers)
    second = await client.post("/predict", json={"symbol": "SPX"}, headers=headers)
    webhook = await client.post(URL, json=tv_message())
    assert (first.status, second.status, webhook.status) == (401, 429, 202)
    assert "Retry-After" in second.headers


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


async def test_metrics_count_outcomes_and_latency_by_route(receiver: MakeReceiver) -> None:
    client = await receiver()
    await client.post(URL, json=tv_message())
    await client.post(URL, json=tv_message())
    await client.post(URL, json=tv_message(passphrase="nope"))
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
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
