"""`POST /webhook/tradingview` (passphrase) and `POST /webhook` (Standard Webhooks signature)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web

from bot.contracts import Alert, AlertSource, TradingViewMessage, TransientError
from bot.runtime import get_logger
from producers import parsing
from producers.audit import AuditRecord
from producers.auth import check_passphrase
from producers.delivery import Outcome
from producers.responses import ERROR_NAMES, ApiError, Handler, json_answer
from producers.state import (
    AUDIT,
    AUDIT_ALERT,
    AUDIT_OUTCOME,
    DELIVERY,
    GUARDS,
    METRICS,
    SETTINGS,
    client_of,
)

log = get_logger(__name__)

RETRY_AFTER_S = 5


def counted(source: AlertSource) -> Callable[[Handler], Handler]:
    """Count every request of a webhook route as received, and each refusal by its reason."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            metrics = request.app[METRICS]
            metrics.child(metrics.alerts_received, source).inc()
            audit = _Audit(request, source)
            try:
                response = await handler(request)
            except ApiError as exc:
                _rejected(request, exc.status, exc.error)
                audit.done(exc.status, exc.error)
                raise
            except web.HTTPException as exc:
                reason = ERROR_NAMES.get(exc.status, "http_error")
                _rejected(request, exc.status, reason)
                audit.done(exc.status, reason)
                raise
            except Exception:
                audit.done(500, "internal")  # the error middleware answers 500
                raise
            audit.done(response.status, None)
            return response

        return wrapper

    return decorate


class _Audit:
    """One line of the audit log per request, from what the handler validated."""

    def __init__(self, request: web.Request, source: AlertSource) -> None:
        self.request, self.source = request, source
        self.received_at = datetime.now(UTC)
        self.started = time.perf_counter()

    def done(self, status: int, error: str | None) -> None:
        self.request.app[AUDIT].record(
            AuditRecord(
                time=self.received_at,
                source=self.source,
                status=status,
                latency_ms=(time.perf_counter() - self.started) * 1000,
                error=error,
                outcome=self.request.get(AUDIT_OUTCOME),
                alert=self.request.get(AUDIT_ALERT),
            )
        )


def _rejected(request: web.Request, status: int, reason: str) -> None:
    """Counted and logged (the receiver runs without an access log); never the body."""
    metrics = request.app[METRICS]
    metrics.child(metrics.alerts_rejected, reason).inc()
    log.info("alert rejected", status=status, reason=reason, client=client_of(request))


@counted("tradingview")
async def tradingview(request: web.Request) -> web.Response:
    """Authenticated by the passphrase inside the JSON: the body is parsed (within the parser's
    limits) before the check, as the scheme requires; every failure up to the check counts
    against the address's failure budget, an accepted alert against the passphrase's limit."""
    settings, guards = request.app[SETTINGS], request.app[GUARDS]
    guards.allowlist.check(request)
    async with guards.limits.unauthenticated(client_of(request)):
        parsing.check_content_type(request)
        document = parsing.parse_object(await request.read())
        check_passphrase(parsing.take_passphrase(document), settings.tradingview_passphrase)
    await guards.limits.hit("webhook", "passphrase", who="the TradingView passphrase")
    source = parsing.take_source(document, "tradingview")
    message = parsing.validate(TradingViewMessage, document)
    return await _accept(request, parsing.to_alert(message, source=source))


@counted("signed")
async def signed(request: web.Request) -> web.Response:
    """Authenticated by the signature over the raw body, before any JSON is built. The alert's
    id is the verified `webhook-id` in its own namespace (`signed:`), so a signed
    client can never claim the deterministic id of a TradingView alert."""
    guards = request.app[GUARDS]
    async with guards.limits.unauthenticated(client_of(request)):
        parsing.check_content_type(request)
        body = await request.read()
        verified = guards.verifier.verify(body, request.headers)
    await guards.limits.hit("webhook", verified.credential, who=f"signing {verified.credential}")
    document = parsing.parse_object(body)
    document.pop("passphrase", None)
    source = parsing.take_source(document, "signed")
    message = parsing.validate(TradingViewMessage, document)
    alert = parsing.to_alert(message, source=source, webhook_id=verified.webhook_id)
    return await _accept(request, alert)


async def _accept(request: web.Request, alert: Alert) -> web.Response:
    request[AUDIT_ALERT] = alert
    parsing.check_bar_time(alert, request.app[SETTINGS].bar_bounds)
    await request.app[GUARDS].history.check(alert)
    try:
        outcome = await request.app[DELIVERY].accept(alert)
    except TransientError as exc:
        raise ApiError(
            503,
            "unavailable",
            "neither Kafka nor the outbox could take the alert; retry later",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from exc
    request[AUDIT_OUTCOME] = outcome
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
