"""The webhook receiver under test: real app, real SQLite outbox, real (or deliberately down) Kafka.

`receiver` serves `producers.create_app` with aiohttp's test server. Without a broker argument the
app points at a free local port where no broker listens, which is the receiver's real "Kafka is
down" path: accepted alerts go to the durable outbox and are answered `queued: true`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from bot.contracts import Settings
from producers import create_app, metrics_listener
from producers.state import METRICS
from storage.migrate import upgrade_async

PASSPHRASE = "test-passphrase-0123456789"

MakeReceiver = Callable[..., Awaitable[TestClient[Any, Any]]]
UNTIL_TIMEOUT_S = 30.0


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def down_bootstrap() -> str:
    """A local address where no broker listens (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def tv_message(**changes: Any) -> dict[str, Any]:
    """The DESIGN.md alert message as TradingView fills it in."""
    message: dict[str, Any] = {
        "passphrase": PASSPHRASE,
        "ticker": "SPX",
        "exchange": "SP",
        "interval": "1D",
        "time": "2026-11-27T00:00:00Z",
        "open": 100.0,
        "high": 110.0,
        "low": 95.0,
        "close": 105.0,
        "volume": 1000.0,
        "action": "buy",
    }
    message.update(changes)
    return {k: v for k, v in message.items() if v is not ...}


def signed_headers(
    body: bytes | str,
    secret: str,
    *,
    msg_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, str]:
    """Standard Webhooks headers for `body`, signed by the library's own `sign`."""
    msg_id = msg_id or f"msg_{secrets.token_hex(12)}"
    at = at or datetime.now(UTC)
    data = body.decode() if isinstance(body, bytes) else body
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, data),
        "content-type": "application/json",
    }


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"))


@pytest.fixture
def webhook_secret() -> str:
    return new_secret()


@pytest.fixture
def receiver(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    settings: Settings,
    webhook_secret: str,
) -> MakeReceiver:
    """`await receiver(**setting_overrides)`: a client of a freshly started receiver."""

    async def make(base: Settings | None = None, **overrides: Any) -> TestClient[Any, Any]:
        chosen = base or settings
        values: dict[str, Any] = {
            "webhook_metrics_port": 0,  # none unless a test asks for one (ports are shared)
            "webhook_secret": SecretStr(webhook_secret),
            "kafka_bootstrap": chosen.kafka_bootstrap if base else down_bootstrap(),
            **overrides,
        }
        configured = chosen.model_copy(update=values)
        await upgrade_async(configured.database_url)
        app = create_app(configured)
        if configured.webhook_metrics_port:  # as `itff webhook` serves it: a listener apart
            listener = metrics_listener(configured.metrics_host, configured.webhook_metrics_port)
            app.cleanup_ctx.append(listener)
        return await aiohttp_client(app)

    return make


def at_offset(**delta: float) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


async def gauge(client: TestClient[Any, Any], name: str) -> float:
    """The value of an unlabelled metric as the receiver's `/metrics` listener renders it."""
    text = client.app[METRICS].render().decode()
    return next(float(line.split()[1]) for line in text.splitlines() if line.startswith(f"{name} "))


async def until(probe: Callable[[], Awaitable[object]], expected: object) -> None:
    """Wait until `probe()` returns `expected`; fail after `UNTIL_TIMEOUT_S` saying what it was."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + UNTIL_TIMEOUT_S
    while (found := await probe()) != expected:
        if loop.time() > deadline:
            pytest.fail(f"still {found!r} after {UNTIL_TIMEOUT_S} s, expected {expected!r}")
        await asyncio.sleep(0.1)
