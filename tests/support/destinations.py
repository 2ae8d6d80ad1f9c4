"""Local HTTP servers standing in for the notifier's destinations (the machines have no
internet): a webhook receiver that verifies Standard Webhooks signatures with the
`standardwebhooks` library, a stub of Telegram's Bot API (`/bot<token>/sendMessage`) and one of a
Discord webhook. Each can be told to fail (5xx), throttle (429 with `Retry-After`) or refuse (4xx)
its next requests, then recovers; each keeps what it accepted."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

TOKEN = "123456:test-bot-token-not-for-logs"
CHAT_ID = "-100123"
DISCORD_PATH = "/api/webhooks/42/discord-token-not-for-logs"


@dataclass
class Stub:
    """One destination's server: scripted failures first, then 2xx; what it accepted."""

    name: str
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    requests: list[float] = field(default_factory=list)  # monotonic times
    after: int = 0  # the script starts once this many requests were accepted
    server: TestServer | None = None

    def fail(self, *statuses: int, retry_after: str | None = None, after: int = 0) -> None:
        """Answer the next requests with these statuses (a 429 with `Retry-After`), once
        `after` requests were accepted."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.script += [(status, headers) for status in statuses]
        self.after = after

    def url(self, path: str = "/") -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    def _scripted(self) -> web.Response | None:
        self.requests.append(time.monotonic())
        if not self.script or len(self.accepted) < self.after:
            return None
        status, headers = self.script.pop(0)
        self.refused += 1
        return web.json_response({"ok": False, "status": status}, status=status, headers=headers)

    def accept(self, signal_id: str, payload: Any) -> None:
        self.accepted.append({"signal_id": signal_id, "payload": payload, "at": time.time()})

    def ids(self) -> Counter[str]:
        """How many times each signal id was accepted."""
        return Counter(item["signal_id"] for item in self.accepted)


def webhook_app(stub: Stub, secret: str) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        body = await request.text()
        try:
            payload = Webhook(secret).verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            return web.json_response({"error": str(exc)}, status=401)
        assert payload["data"]["signal_id"] == request.headers["webhook-id"]
        if (scripted := stub._scripted()) is not None:
            return scripted
        stub.accept(request.headers["webhook-id"], payload)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks/itff", receive)
    return app


def _signal_id(text: str) -> str:
    return text.rsplit("signal ", 1)[1].strip()


def telegram_app(stub: Stub) -> web.Application:
    async def send_message(request: web.Request) -> web.Response:
        if request.match_info["token"] != TOKEN:
            return web.json_response({"ok": False, "error_code": 401}, status=401)
        message = json.loads(await request.text())
        if message.get("chat_id") != CHAT_ID:
            return web.json_response({"ok": False, "description": "chat not found"}, status=400)
        if (scripted := stub._scripted()) is not None:
            return scripted
        stub.accept(_signal_id(message["text"]), message)
        return web.json_response({"ok": True, "result": {"message_id": len(stub.accepted)}})

    app = web.Application()
    app.router.add_post("/bot{token}/sendMessage", send_message)
    return app


def discord_app(stub: Stub) -> web.Application:
    async def execute(request: web.Request) -> web.Response:
        message = json.loads(await request.text())
        if (scripted := stub._scripted()) is not None:
            return scripted
        stub.accept(_signal_id(message["content"]), message)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post(DISCORD_PATH, execute)
    return app


@dataclass
class Destinations:
    webhook: Stub
    telegram: Stub
    discord: Stub
    secret: str

    def settings(self) -> dict[str, Any]:
        """The notifier's settings pointing at these servers."""
        return {
            "signal_webhook_urls": [self.webhook.url("/hooks/itff")],
            "signal_webhook_secret": SecretStr(self.secret),
            "telegram_bot_token": SecretStr(TOKEN),
            "telegram_chat_id": CHAT_ID,
            "telegram_api_base_url": self.telegram.url(""),
            "discord_webhook_url": SecretStr(self.discord.url(DISCORD_PATH)),
        }

    def env(self) -> dict[str, str]:
        return {
            "ITFF_SIGNAL_WEBHOOK_URLS": self.webhook.url("/hooks/itff"),
            "ITFF_SIGNAL_WEBHOOK_SECRET": self.secret,
            "ITFF_TELEGRAM_BOT_TOKEN": TOKEN,
            "ITFF_TELEGRAM_CHAT_ID": CHAT_ID,
            "ITFF_TELEGRAM_API_BASE_URL": self.telegram.url(""),
            "ITFF_DISCORD_WEBHOOK_URL": self.discord.url(DISCORD_PATH),
        }

    def all(self) -> tuple[Stub, Stub, Stub]:
        return (self.webhook, self.telegram, self.discord)


@asynccontextmanager
async def destination_servers(secret: str) -> AsyncIterator[Destinations]:
    stubs = Destinations(Stub("webhook"), Stub("telegram"), Stub("discord"), secret)
    apps = (
        webhook_app(stubs.webhook, secret),
        telegram_app(stubs.telegram),
        discord_app(stubs.discord),
    )
    servers = [TestServer(app) for app in apps]
    for stub, server in zip(stubs.all(), servers, strict=True):
        await server.start_server()
        stub.server = server
    try:
        yield stubs
    finally:
        for server in servers:
            await server.close()
