"""What the notifier sends for a signal, and when it tries again: pure functions.

Destinations: `webhook` (Standard Webhooks, the signal as `data`), `telegram` (a chat message) and
`discord` (a webhook message). A delivery is retried with exponential backoff (with jitter) on a
5xx, a timeout, a connection error and a 429 (after its `Retry-After`); any other 4xx is final.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from bot.contracts import Signal

WEBHOOK_EVENT = "signal.created"
FIRST_DELAY, MAX_DELAY = 0.5, 30.0
HTTP_TOO_MANY, HTTP_TIMEOUT, HTTP_SERVER_ERROR = 429, 408, 500
ICON = {"buy": "🟢", "sell": "🔴", "hold": "⚪"}


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt: delivered, to be retried (after at least `retry_after` s) or final."""

    ok: bool
    retry: bool
    label: str  # the metrics' outcome label: ok, http_5xx, http_429, http_4xx, timeout, error
    error: str | None = None
    retry_after: float | None = None


def outcome_of(status: int, retry_after: str | None = None, body: str = "") -> Outcome:
    if 200 <= status < 300:  # noqa: PLR2004
        return Outcome(ok=True, retry=False, label="ok")
    error = f"HTTP {status}: {body[:200]}".rstrip(": ")
    if status == HTTP_TOO_MANY:
        return Outcome(
            ok=False,
            retry=True,
            label="http_429",
            error=error,
            retry_after=parse_retry_after(retry_after),
        )
    if status >= HTTP_SERVER_ERROR or status == HTTP_TIMEOUT:
        label = "http_5xx" if status >= HTTP_SERVER_ERROR else "timeout"
        return Outcome(ok=False, retry=True, label=label, error=error)
    return Outcome(ok=False, retry=False, label="http_4xx", error=error)


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds (the HTTP-date form is treated as absent: not used by the APIs)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Seconds before attempt `attempt + 1`: 0.5 s doubling to 30 s, jittered; at least
    `retry_after` when the destination said so."""
    delay = min(MAX_DELAY, FIRST_DELAY * 2 ** max(0, attempt - 1))
    delay *= random.uniform(0.8, 1.2)  # jitter: destinations are not hit in lockstep
    return float(max(delay, retry_after or 0.0))


def webhook_payload(signal: Signal) -> dict[str, Any]:
    """The Standard Webhooks envelope: `type`, `timestamp`, the signal as `data`."""
    data = signal.model_dump(mode="json")
    return {"type": WEBHOOK_EVENT, "timestamp": data["emitted_at"], "data": data}


def headline(signal: Signal) -> str:
    probability = "" if signal.probability is None else f" p={signal.probability:.2f}"
    ood = " (input outside the training distribution)" if signal.ood else ""
    return (
        f"{ICON[signal.action]} {signal.action.upper()} {signal.symbol} {signal.interval}"
        f"{probability}{ood}"
    )


def text(signal: Signal) -> str:
    """The human message of Telegram and Discord."""
    return "\n".join(
        (
            headline(signal),
            f"bar {signal.bar_time:%Y-%m-%d %H:%M} UTC, prediction {signal.prediction:.4g}",
            f"model {signal.model_key} v{signal.model_version}",
            f"signal {signal.signal_id}",
        )
    )


def telegram_payload(signal: Signal, chat_id: str) -> dict[str, Any]:
    return {"chat_id": chat_id, "text": text(signal), "disable_web_page_preview": True}


def discord_payload(signal: Signal) -> dict[str, Any]:
    return {"content": text(signal), "allowed_mentions": {"parse": []}}
