"""From request bytes to a validated message: content type, JSON, pydantic, freshness.

Every failure is an `ApiError` naming what was wrong; the passphrase is taken out of the document
before validation, so it can appear neither in an error nor in a log line.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, SecretStr, ValidationError

from bot.contracts import Alert, AlertSource, TradingViewMessage, utcnow
from bot.contracts.bars import BarTimeBounds
from producers.responses import ApiError

M = TypeVar("M", bound=BaseModel)

JSON_TYPES = frozenset({"application/json", "text/plain"})
REPLAY_SOURCE = "replay"
MAX_DEPTH = 16
# a JSON string (kept as it is) or a bare NaN token (read as null)
_NAN_OUTSIDE_STRINGS = re.compile(rb'"(?:[^"\\\\]|\\\\.)*"|\bNaN\b')
_LIMITS = {
    "depth limit": "the JSON nests deeper than 1024 levels (the parser's limit)",
    "infinity when parsed as double": "a number is beyond the range of a 64-bit float "
    "(about 1.8e308)",
    "surrogate": "a string holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text",
    "not valid UTF-8": "the body is not UTF-8 text",
}


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
    """The body as a JSON object, within the parser's limits; `ApiError` 400 naming what failed.

    orjson refuses invalid UTF-8, lone surrogates, numbers beyond a double and nesting deeper
    than 1024; `check_depth` holds values to `MAX_DEPTH`. TradingView writes `NaN` (not JSON) for
    a value a symbol does not have, such as an index's volume: only then, the bare `NaN` tokens
    outside strings are read as `null` and the body is parsed again.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        document = _parse_with_nan(body, exc)
    if not isinstance(document, dict):
        raise ApiError(
            400, "not_object", f"the body must be a JSON object, got {type(document).__name__}"
        )
    check_depth(document)
    return document


def _parse_with_nan(body: bytes, first: orjson.JSONDecodeError) -> Any:
    if b"NaN" not in body:
        raise _not_json(first)
    try:
        return orjson.loads(_NAN_OUTSIDE_STRINGS.sub(_null_for_nan, body))
    except orjson.JSONDecodeError as exc:
        raise _not_json(exc) from exc


def _null_for_nan(match: re.Match[bytes]) -> bytes:
    return b"null" if match.group(0) == b"NaN" else match.group(0)


def _not_json(exc: orjson.JSONDecodeError) -> ApiError:
    reason = str(exc.msg)
    for fragment, limit in _LIMITS.items():
        if fragment in reason:
            return ApiError(400, "limit_exceeded", f"{limit} (at character {exc.pos})")
    return ApiError(
        400,
        "not_json",
        f"the body is not JSON ({reason} at line {exc.lineno} column {exc.colno}); check the "
        "alert message in TradingView: numbers unquoted, strings quoted",
    )


def check_depth(document: dict[str, Any]) -> None:
    """`ApiError` 400 when a value nests deeper than `MAX_DEPTH` (an alert's values are flat)."""
    pending: list[tuple[Any, int]] = [
        (value, 2) for value in document.values() if isinstance(value, dict | list)
    ]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise ApiError(
                400, "limit_exceeded", f"the JSON nests deeper than {MAX_DEPTH} levels (the limit)"
            )
        children = value.values() if isinstance(value, dict) else value
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


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
    message: TradingViewMessage, *, source: AlertSource, webhook_id: str | None = None
) -> Alert:
    try:
        return message.to_alert(source=source, webhook_id=webhook_id)
    except ValidationError as exc:
        rename = {"webhook_id": "webhook-id", "extra": "extra fields"}
        raise ApiError(422, "validation", field_errors(exc, rename=rename)) from exc


def check_bar_time(alert: Alert, bounds: BarTimeBounds) -> None:
    """`ApiError` 422 when the alert's bar time is outside the plausible range."""
    check_time(alert.bar_time, alert.interval, bounds, field="time")


def check_time(
    bar_time: datetime, interval: str, bounds: BarTimeBounds, *, field: str = "time"
) -> None:
    """`ApiError` 422 naming the allowed range when `bar_time` is outside it at this moment."""
    problem = bounds.violation(bar_time, interval, utcnow())
    if problem is not None:
        raise ApiError(422, "out_of_range", [{"field": field, "message": problem}])
