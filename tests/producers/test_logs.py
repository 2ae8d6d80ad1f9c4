"""The receiver's JSON log lines: one JSON object a line, the same keys, never a secret.

Production logging renders with orjson to bytes (structlog's `BytesLogger` on stderr's binary
buffer); stdlib loggers are rendered to text through the same chain.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import structlog

from bot.runtime import configure_logging, get_logger
from tests.support.webhook import PASSPHRASE, MakeReceiver, tv_message

URL = "/webhook/tradingview"
BASE_KEYS = {"event", "level", "timestamp", "service"}

ReadLines = Callable[[], list[dict[str, Any]]]


def _configured(monkeypatch: pytest.MonkeyPatch, stream: io.TextIOBase) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", stream)
        configure_logging(level="DEBUG", json=True, service="itff-webhook-test")


def _parsed(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ReadLines, Callable[[], bytes]]]:
    """Production JSON logging into an in-memory stderr with a binary buffer, as the real one."""
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", line_buffering=True)
    _configured(monkeypatch, stream)

    def written() -> bytes:
        stream.flush()
        return raw.getvalue()

    yield (lambda: _parsed(written().decode())), written
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()
    stream.detach()  # loggers cached on first use keep the buffer: it must stay open


async def test_passphrase_never_reaches_the_logs(
    receiver: MakeReceiver, json_logs: tuple[ReadLines, Callable[[], bytes]]
) -> None:
    lines, written = json_logs
    client = await receiver()
    accepted = await (await client.post(URL, json=tv_message())).json()
    await client.post(URL, json=tv_message(close="x"))
    await client.post(URL, json=tv_message(passphrase=PASSPHRASE + "-wrong"))
    await client.close()
    assert PASSPHRASE.encode() not in written()
    by_event = {}
    for line in lines():
        by_event.setdefault(line["event"], []).append(line)
    (queued,) = by_event["alert queued"]
    assert set(queued) == BASE_KEYS | {"alert_id", "source", "symbol", "bar_time"}
    assert queued["alert_id"] == accepted["alert_id"]
    assert queued["service"] == "itff-webhook-test"
    assert queued["level"] == "info"
    refused = [(line["status"], line["reason"]) for line in by_event["alert rejected"]]
    assert refused == [(422, "validation"), (401, "unauthorized")]
    assert {line["client"] for line in by_event["alert rejected"]} == {"127.0.0.1"}


def test_fields_keep_their_keys_and_secrets_are_masked(
    json_logs: tuple[ReadLines, Callable[[], bytes]],
) -> None:
    lines, written = json_logs
    log = get_logger("test")
    log.info(
        "counted",
        statuses={202: 3, 200: 1},
        score=np.float64(0.25),
        sizes=np.arange(3),
        passphrase="hunter2-hunter2",
        api_token="t0ken-t0ken",
        when=object(),
        bar=pd.Timestamp("2017-10-19", tz="UTC"),
    )
    logging.getLogger("aiokafka").warning("broker %s gone", "localhost:9092")
    counted, foreign = lines()
    assert set(counted) == BASE_KEYS | {
        "statuses",
        "score",
        "sizes",
        "passphrase",
        "api_token",
        "when",
        "bar",
    }
    assert counted["statuses"] == {"202": 3, "200": 1}
    assert counted["score"] == 0.25
    assert counted["sizes"] == [0, 1, 2]
    assert counted["passphrase"] == counted["api_token"] == "***"
    assert counted["when"].startswith("<object object at")
    assert counted["bar"] == "2017-10-19T00:00:00+00:00"  # a datetime subclass, not its repr
    assert b"hunter2" not in written()
    assert b"t0ken" not in written()
    assert set(foreign) == BASE_KEYS
    assert foreign["event"] == "broker localhost:9092 gone"
    assert foreign["level"] == "warning"


def test_an_exception_is_one_json_line_with_its_traceback(
    json_logs: tuple[ReadLines, Callable[[], bytes]],
) -> None:
    lines, _ = json_logs
    try:
        raise ValueError("boom")  # noqa: TRY301 - the logged exception
    except ValueError:
        get_logger("test").exception("request failed", route="/webhook")
    (line,) = lines()
    assert set(line) == BASE_KEYS | {"route", "exception"}
    assert 'ValueError("boom")' in line["exception"] or "ValueError: boom" in line["exception"]


def test_a_text_only_stream_gets_the_same_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    _configured(monkeypatch, stream)
    try:
        get_logger("test").info("alert published", alert_id="a" * 32, passphrase="hunter2")
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    (line,) = _parsed(stream.getvalue())
    assert set(line) == BASE_KEYS | {"alert_id", "passphrase"}
    assert line["passphrase"] == "***"
