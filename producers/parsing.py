"""From request bytes to a validated message: content type, JSON, pydantic, freshness.

Every failure is an `ApiError` naming what was wrong; the passphrase is taken out of the document
before validation, so it can appear neither in an error nor in a log line.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, SecretStr, ValidationError

from bot.contracts import Alert, AlertSource, TradingViewMessage, utcnow
from producers.responses import ApiError

M = TypeVar("M", bound=BaseModel)

JSON_TYPES = frozenset({"application/json", "text/plain"})
REPLAY_SOURCE = "replay"


def check_content_type(request: web.Request) -> None:
    kind = request.content_type
    if kind not in JSON_TYPES and not kind.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"content type {kind!r} is not accepted; send the alert JSON as application/json "
            "or text/plain",
        )


def parse_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except UnicodeDecodeError as exc:
        raise ApiError(400, "not_json", "the body is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            "not_json",
            f"the body is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "check the alert message in TradingView: numbers unquoted, strings quoted",
        ) from exc
    if not isinstance(document, dict):
        raise ApiError(
            400, "not_object", f"the body must be a JSON object, got {type(document).__name__}"
        )
    return document


def field_errors(
    exc: ValidationError, *, rename: dict[str, str] | None = None
) -> list[dict[str, str]]:
    """`[{"field": "close", "message": "..."}]`, one per pydantic error, never the input value."""
    names = rename or {}
    errors = []
    for error in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "body"
        errors.append({"field": names.get(field, field), "message": error["msg"]})
    return errors


def validate(
    model: type[M], document: dict[str, Any], *, rename: dict[str, str] | None = None
) -> M:
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise ApiError(422, "validation", field_errors(exc, rename=rename)) from exc


def take_passphrase(document: dict[str, Any]) -> SecretStr | None:
    """Remove the passphrase from the document; the only place it is read."""
    value = document.pop("passphrase", None)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(401, "unauthorized", "the field 'passphrase' must be a string")
    return SecretStr(value)


def take_source(document: dict[str, Any], default: AlertSource) -> AlertSource:
    """`"source": "replay"` marks alerts sent by `itff replay`; nothing else is honoured."""
    source = document.pop("source", None)
    if source is None:
        return default
    if source != REPLAY_SOURCE:
        raise ApiError(
            422, "validation", [{"field": "source", "message": "only 'replay' may be given"}]
        )
    return "replay"


def to_alert(
    message: TradingViewMessage, *, source: AlertSource, alert_id: str | None = None
) -> Alert:
    try:
        return message.to_alert(source=source, alert_id=alert_id)
    except ValidationError as exc:
        rename = {"alert_id": "webhook-id", "extra": "extra fields"}
        raise ApiError(422, "validation", field_errors(exc, rename=rename)) from exc


def check_fresh(bar_time: datetime, stale_after_seconds: int) -> None:
    if stale_after_seconds <= 0:
        return
    oldest = utcnow() - timedelta(seconds=stale_after_seconds)
    if bar_time < oldest:
        raise ApiError(
            422,
            "stale",
            f"bar time {bar_time.isoformat()} is older than ITFF_STALE_AFTER_SECONDS="
            f"{stale_after_seconds}; the alert is refused as stale",
        )
