"""JSON responses and the outermost middleware: timing, and every failure as a JSON error.

No traceback ever reaches a client: an unexpected exception is logged with its traceback and the
client gets `500 {"error": "internal", "detail": ...}`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from bot.runtime import get_logger
from producers.telemetry import ReceiverMetrics

log = get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ERROR_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


def json_answer(
    document: Any, *, status: int, headers: Mapping[str, str] | None = None
) -> web.Response:
    """`web.json_response` with the body encoded by orjson (a few us less on every request)."""
    body = orjson.dumps(document, default=str, option=orjson.OPT_NON_STR_KEYS)
    return web.Response(
        body=body, status=status, headers=headers, content_type="application/json", charset="utf-8"
    )


class ApiError(Exception):
    """An HTTP error answered as `{"error": error, "detail": detail}`."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: Any,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return json_answer(
            {"error": self.error, "detail": self.detail}, status=self.status, headers=self.headers
        )


class MalformedHttpFilter(logging.Filter):
    """aiohttp's HTTP parser answers a malformed request (a control byte in a header, a broken
    request line) with a plain-text 400 before any handler runs, and logs it at ERROR with a
    traceback: junk from the internet would fill the error log. Such records are kept, at INFO,
    as one line naming the problem."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, BadHttpMessage):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = f"malformed HTTP request refused with 400: {error.message}"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


def quiet_malformed_http() -> None:
    """Install `MalformedHttpFilter` on aiohttp's server logger (once per process)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedHttpFilter) for f in logger.filters):
        logger.addFilter(MalformedHttpFilter())


def _from_http_exception(exc: web.HTTPException, max_body_bytes: int) -> ApiError:
    status = exc.status
    if status == web.HTTPRequestEntityTooLarge.status_code:
        detail = (
            f"the body is larger than the limit of {max_body_bytes} bytes (ITFF_MAX_BODY_BYTES)"
        )
    elif status == web.HTTPNotFound.status_code:
        detail = "no such route; see docs/openapi.yaml for the routes of the receiver"
    else:
        detail = exc.text if exc.text and not exc.text.startswith(str(status)) else exc.reason
    headers = {k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after"}}
    return ApiError(status, ERROR_NAMES.get(status, "http_error"), detail, headers=headers)


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def error_middleware(metrics: ReceiverMetrics, max_body_bytes: int) -> Any:
    """Times every request and turns every failure into a JSON error response."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except ApiError as exc:
            response = exc.response()
        except web.HTTPException as exc:
            if exc.status < 400:  # noqa: PLR2004 - redirects and 2xx raised as exceptions
                raise
            response = _from_http_exception(exc, max_body_bytes).response()
        except Exception:
            log.exception("request failed", route=_route_of(request), method=request.method)
            response = ApiError(
                500, "internal", "the receiver failed on this request; it is logged, try again"
            ).response()
        latency = metrics.child(metrics.request_latency, _route_of(request), str(response.status))
        latency.observe(time.perf_counter() - started)
        return response

    return middleware
