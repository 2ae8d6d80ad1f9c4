"""What the notifier sends and when it tries again; the destination settings it refuses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.contracts import ConfigError, Signal, load_settings
from bot.core.notifications import (
    backoff,
    discord_payload,
    outcome_of,
    telegram_payload,
    text,
    webhook_payload,
)
from bot.core.signal_filter import SignalFilter

SIGNAL = Signal(
    signal_id="6f1c0e7d2a4b4a4f9d8e3c2b1a0f9e8d",
    alert_id="a" * 32,
    symbol="SPX",
    interval="1D",
    bar_time=datetime(2018, 12, 31, tzinfo=UTC),
    model_key="SPX-direction-logreg",
    model_version="20181231T000000Z",
    target="direction",
    prediction=1.0,
    probability=0.61,
    action="buy",
    ood=True,
    latency_ms=4.2,
)


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (200, None, (True, False, "ok", None)),
        (204, None, (True, False, "ok", None)),
        (429, "7", (False, True, "http_429", 7.0)),
        (429, "Wed, 21 Oct 2015 07:28:00 GMT", (False, True, "http_429", None)),
        (503, None, (False, True, "http_5xx", None)),
        (408, None, (False, True, "timeout", None)),
        (400, None, (False, False, "http_4xx", None)),
        (404, None, (False, False, "http_4xx", None)),
    ],
)
def test_outcomes(status: int, retry_after: str | None, expected: tuple[object, ...]) -> None:
    outcome = outcome_of(status, retry_after, "body")
    assert (outcome.ok, outcome.retry, outcome.label, outcome.retry_after) == expected


def test_backoff_doubles_up_to_a_cap_and_honours_retry_after() -> None:
    assert 0.4 <= backoff(1) <= 0.6
    assert 1.6 <= backoff(3) <= 2.4
    assert backoff(30) <= 36.0
    assert backoff(1, retry_after=12.0) == 12.0


def test_messages() -> None:
    assert text(SIGNAL).splitlines() == [
        "🟢 BUY SPX 1D p=0.61 (input outside the training distribution)",
        "bar 2018-12-31 00:00 UTC, prediction 1",
        "model SPX-direction-logreg v20181231T000000Z",
        "signal 6f1c0e7d2a4b4a4f9d8e3c2b1a0f9e8d",
    ]
    assert telegram_payload(SIGNAL, "-100")["chat_id"] == "-100"
    assert discord_payload(SIGNAL)["allowed_mentions"] == {"parse": []}
    envelope = webhook_payload(SIGNAL)
    assert envelope["type"] == "signal.created"
    assert Signal.model_validate(envelope["data"]) == SIGNAL


def test_filters() -> None:
    assert SignalFilter().matches(SIGNAL)
    assert SignalFilter.of(symbols=["spx"], actions=["BUY"]).matches(SIGNAL)
    assert not SignalFilter.of(actions=["buy", "sell"]).matches(
        SIGNAL.model_copy(update={"action": "hold"})
    )
    assert not SignalFilter.of(models=["SPX-return-ridge"]).matches(SIGNAL)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"signal_webhook_urls": "http://x/hook"}, "needs ITFF_SIGNAL_WEBHOOK_SECRET"),
        ({"signal_webhook_urls": "ftp://x", "signal_webhook_secret": "whsec_abc"}, "not an http"),
        ({"signal_webhook_urls": "http://x", "signal_webhook_secret": "abc"}, "whsec_"),
        ({"telegram_bot_token": "1:abc"}, "ITFF_TELEGRAM_CHAT_ID"),
        ({"telegram_actions": "buy,close"}, "unknown actions ['close']"),
        ({"discord_webhook_url": "discord.com/api/webhooks/1/x"}, "http:// or https://"),
    ],
)
def test_incomplete_destinations_are_refused_at_start_up(
    variables: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(**variables)
