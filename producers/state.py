"""What the handlers share, under typed `web.AppKey`s (built by `producers.app.create_app`)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from bot.contracts import Alert, Settings
from producers.audit import AuditLog
from producers.auth import SignatureVerifier
from producers.delivery import AlertDelivery
from producers.history import HistoryGuard
from producers.network import IpAllowlist
from producers.prediction import PredictionService
from producers.ratelimit import RateLimits
from producers.readiness import Readiness
from producers.telemetry import ReceiverMetrics


@dataclass(frozen=True, slots=True)
class Guards:
    limits: RateLimits
    allowlist: IpAllowlist
    verifier: SignatureVerifier
    history: HistoryGuard


SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", ReceiverMetrics)
GUARDS = web.AppKey("guards", Guards)
DELIVERY = web.AppKey("delivery", AlertDelivery)
PREDICTION = web.AppKey("prediction", PredictionService)
READINESS = web.AppKey("readiness", Readiness)
AUDIT = web.AppKey("audit", AuditLog)
AUDIT_ALERT = web.RequestKey("audit_alert", Alert)
AUDIT_OUTCOME = web.RequestKey("audit_outcome", str)


def client_of(request: web.Request) -> str:
    """The client address (after trusted proxies), the key of the rate limits."""
    return request.remote or "unknown"
