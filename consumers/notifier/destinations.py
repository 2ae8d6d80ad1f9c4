"""The destinations of the notifier: HTTP webhooks signed with Standard Webhooks, Telegram's Bot
API (`sendMessage`) and a Discord webhook. Each sends one signal in one attempt and says how it
went (`bot.core.notifications.Outcome`); none ever puts its secret in an error or a log line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from bot.contracts import Settings, Signal, utcnow
from bot.core.notifications import (
    Outcome,
    discord_payload,
    outcome_of,
    telegram_payload,
    webhook_payload,
)
from bot.core.signal_filter import SignalFilter

JSON = "application/json"


class Destination(Protocol):
    name: str
    wants: SignalFilter

    async def send(self, http: aiohttp.ClientSession, signal: Signal) -> Outcome: ...


async def _post(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> Outcome:
    """One POST; network failures are outcomes too (retried), described without the URL."""
    try:
        async with http.post(url, data=body, headers={"content-type": JSON, **headers}) as reply:
            text = await reply.text(errors="replace") if reply.status >= 300 else ""  # noqa: PLR2004
            return outcome_of(reply.status, reply.headers.get("Retry-After"), text)
    except TimeoutError:
        return Outcome(ok=False, retry=True, label="timeout", error="timed out")
    except aiohttp.ClientError as exc:
        return Outcome(ok=False, retry=True, label="error", error=type(exc).__name__)


@dataclass(slots=True)
class WebhookDestination:
    """An HTTP endpoint; the body is the Standard Webhooks envelope, `webhook-id` the signal's
    id (a receiver drops a redelivery by it)."""

    name: str
    url: str
    secret: SecretStr = field(repr=False)
    wants: SignalFilter

    async def send(self, http: aiohttp.ClientSession, signal: Signal) -> Outcome:
        body = json.dumps(webhook_payload(signal), separators=(",", ":"))
        now = utcnow()
        signature = Webhook(self.secret.get_secret_value()).sign(signal.signal_id, now, body)
        headers = {
            "webhook-id": signal.signal_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        return await _post(http, self.url, body.encode(), headers)


@dataclass(slots=True)
class TelegramDestination:
    name: str
    base_url: str
    token: SecretStr = field(repr=False)
    chat_id: str
    wants: SignalFilter

    async def send(self, http: aiohttp.ClientSession, signal: Signal) -> Outcome:
        url = f"{self.base_url.rstrip('/')}/bot{self.token.get_secret_value()}/sendMessage"
        body = json.dumps(telegram_payload(signal, self.chat_id)).encode()
        return await _post(http, url, body, {})


@dataclass(slots=True)
class DiscordDestination:
    name: str
    url: SecretStr = field(repr=False)
    wants: SignalFilter

    async def send(self, http: aiohttp.ClientSession, signal: Signal) -> Outcome:
        body = json.dumps(discord_payload(signal)).encode()
        return await _post(http, self.url.get_secret_value(), body, {})


def _wants(symbols: list[str], models: list[str], actions: list[str]) -> SignalFilter:
    return SignalFilter.of(symbols=symbols, models=models, actions=actions)


def destinations(settings: Settings) -> list[Destination]:
    """The configured destinations: `webhook-1`, `webhook-2`... in the order of
    ITFF_SIGNAL_WEBHOOK_URLS, then `telegram` and `discord`."""
    s = settings
    found: list[Destination] = []
    if s.signal_webhook_secret is not None:
        wants = _wants(s.signal_webhook_symbols, s.signal_webhook_models, s.signal_webhook_actions)
        secret = SecretStr(s.signal_webhook_secret.get_secret_value().split()[0])
        found += [
            WebhookDestination(f"webhook-{n}", url, secret, wants)
            for n, url in enumerate(s.signal_webhook_urls, start=1)
        ]
    if s.telegram_bot_token is not None and s.telegram_chat_id is not None:
        wants = _wants(s.telegram_symbols, s.telegram_models, s.telegram_actions)
        found.append(
            TelegramDestination(
                "telegram", s.telegram_api_base_url, s.telegram_bot_token, s.telegram_chat_id, wants
            )
        )
    if s.discord_webhook_url is not None:
        wants = _wants(s.discord_symbols, s.discord_models, s.discord_actions)
        found.append(DiscordDestination("discord", s.discord_webhook_url, wants))
    return found


def http_session(settings: Settings) -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(total=settings.notifier_timeout_seconds)
    return aiohttp.ClientSession(timeout=timeout, raise_for_status=False)
