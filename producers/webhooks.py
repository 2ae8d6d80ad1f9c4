"""`POST /webhook/tradingview` (passphrase) and `POST /webhook` (Standard Webhooks signature)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot.contracts import Alert, AlertSource, TradingViewMessage, TransientError
from bot.runtime import get_logger
from producers import parsing
from producers.auth import check_passphrase
from producers.delivery import Outcome
from producers.responses import ERROR_NAMES, ApiError, Handler, json_answer
from producers.state import DELIVERY, GUARDS, METRICS, SETTINGS, client_of

log = get_logger(__name__)

RETRY_AFTER_S = 5


def counted(source: AlertSource) -> Callable[[Handler], Handler]:
    """Count every request of a webhook route as received, and each refusal by its reason."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            metrics = request.app[METRICS]
            metrics.child(metrics.alerts_received, source).inc()
            try:
                return await handler(request)
            except ApiError as exc:
                _rejected(request, exc.status, exc.error)
                raise
            except web.HTTPException as exc:
                _rejected(request, exc.status, ERROR_NAMES.get(exc.status, "http_error"))
                raise

        return wrapper

    return decorate


def _rejected(request: web.Request, status: int, reason: str) -> None:
    """Counted and logged (the receiver runs without an access log); never the body."""
    metrics = request.app[METRICS]
    metrics.child(metrics.alerts_rejected, reason).inc()
    log.info("alert rejected", status=status, reason=reason, client=client_of(request))


async def _read_document(request: web.Request) -> tuple[bytes, dict[str, Any]]:
    parsing.check_content_type(request)
    body = await request.read()
    return body, parsing.parse_object(body)


@counted("tradingview")
async def tradingview(request: web.Request) -> web.Response:
    settings, guards = request.app[SETTINGS], request.app[GUARDS]
    guards.allowlist.check(request)
    await guards.limits.hit("webhook", client_of(request))
    _, document = await _read_document(request)
    check_passphrase(parsing.take_passphrase(document), settings.tradingview_passphrase)
    source = parsing.take_source(document, "tradingview")
    message = parsing.validate(TradingViewMessage, document)
    return await _accept(request, parsing.to_alert(message, source=source))


@counted("signed")
async def signed(request: web.Request) -> web.Response:
    guards = request.app[GUARDS]
    await guards.limits.hit("webhook", client_of(request))
    body, document = await _read_document(request)
    webhook_id = guards.verifier.verify(body, request.headers)
    document.pop("passphrase", None)
    source = parsing.take_source(document, "signed")
    message = parsing.validate(TradingViewMessage, document)
    return await _accept(request, parsing.to_alert(message, source=source, alert_id=webhook_id))


async def _accept(request: web.Request, alert: Alert) -> web.Response:
    parsing.check_fresh(alert.bar_time, request.app[SETTINGS].stale_after_seconds)
    try:
        outcome = await request.app[DELIVERY].accept(alert)
    except TransientError as exc:
        raise ApiError(
            503,
            "unavailable",
            "neither Kafka nor the outbox could take the alert; retry later",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from exc
    _count(request, alert, outcome)
    return _response(alert.alert_id, outcome)


def _count(request: web.Request, alert: Alert, outcome: Outcome) -> None:
    metrics = request.app[METRICS]
    if outcome == "duplicate":
        metrics.child(metrics.alerts_duplicate, alert.source).inc()
    else:
        metrics.child(metrics.alerts_accepted, alert.source, outcome).inc()
    log.info(
        f"alert {outcome}",
        alert_id=alert.alert_id,
        source=alert.source,
        symbol=alert.symbol,
        bar_time=alert.bar_time.isoformat(),
    )


def _response(alert_id: str, outcome: Outcome) -> web.Response:
    if outcome == "duplicate":
        return json_answer({"alert_id": alert_id, "status": "duplicate"}, status=200)
    return json_answer(
        {"alert_id": alert_id, "status": "accepted", "queued": outcome == "queued"}, status=202
    )
