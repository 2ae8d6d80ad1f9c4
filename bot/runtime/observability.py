"""Structured JSON logs (structlog) and the Prometheus metrics endpoint shared by all processes.

JSON lines are rendered by orjson straight to bytes and written by structlog's `BytesLogger`, as
structlog's performance guide recommends (the receiver writes one line per alert: 54 -> 26 us a
line, measured); stdlib loggers go through the same chain, rendered to text.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Callable, MutableMapping
from datetime import date, datetime
from typing import Any, BinaryIO, TextIO

import orjson
import structlog
from prometheus_client import start_http_server

SECRET_KEYS = frozenset({"passphrase", "api_token", "password", "secret", "signing_key", "token"})


# `scheme://user:password@host`: the password of a URL (a database URL in an error message)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@")


def mask_url_passwords(text: str) -> str:
    """`text` with the password of every URL in it replaced by `***`."""
    return _URL_PASSWORD.sub(r"\g<head>***@", text)


def _mask_urls(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """No URL password (in a message, a field, a formatted traceback) reaches a log line."""
    for key, value in event.items():
        if isinstance(value, str) and "://" in value:
            event[key] = mask_url_passwords(value)
    return event


def _redact(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """Last line of defence: no field named like a secret ever reaches a log line."""
    for key in list(event):
        if key.lower() in SECRET_KEYS:
            event[key] = "***"
    return event


# Non-string keys (e.g. {202: 5}) are written as strings, numpy scalars and arrays as numbers,
# as the stdlib renderer did; anything else falls back to structlog's repr.
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _iso_or(fallback: Callable[[Any], Any], value: Any) -> Any:
    """Datetimes orjson leaves out (subclasses such as `pandas.Timestamp`) as ISO strings."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return fallback(value)


def _json_bytes(event: Any, *, default: Callable[[Any], Any] = repr, **kwargs: Any) -> bytes:
    return orjson.dumps(
        event, default=functools.partial(_iso_or, default), option=_ORJSON_OPTIONS, **kwargs
    )


def _json_text(event: Any, **kwargs: Any) -> str:
    return _json_bytes(event, **kwargs).decode()


def _renderers(*, json: bool, stream: TextIO) -> tuple[Any, Any, Any]:
    """(structlog's renderer, its logger factory, the stdlib formatter's renderer)."""
    if not json:
        console = structlog.dev.ConsoleRenderer(colors=False)
        return console, structlog.PrintLoggerFactory(file=stream), console
    text = structlog.processors.JSONRenderer(serializer=_json_text)
    binary: BinaryIO | None = getattr(stream, "buffer", None)
    if binary is None:  # a text-only stream (e.g. io.StringIO): the same lines, as text
        return text, structlog.PrintLoggerFactory(file=stream), text
    bytes_renderer = structlog.processors.JSONRenderer(serializer=_json_bytes)
    return bytes_renderer, structlog.BytesLoggerFactory(file=binary), text


def configure_logging(*, level: str = "INFO", json: bool = True, service: str = "itff") -> None:
    """JSON lines on stderr with ISO UTC timestamps; stdlib loggers go through the same chain."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    renderer, factory, stdlib_renderer = _renderers(json=json, stream=sys.stderr)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, _mask_urls, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _mask_urls,
                stdlib_renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka", "apscheduler", "bokeh", "tornado", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Expose the default registry on `http://host:port/metrics` from a daemon thread
    (`ITFF_METRICS_HOST`: loopback unless a scraper on a private network needs it)."""
    start_http_server(port, addr=host)
