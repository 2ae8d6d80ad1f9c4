"""Hostile input never gets a 5xx, and every accepted alert reaches Kafka (real receiver, real
broker, real SQLite outbox).

Two generators, both run by hypothesis in a worker thread against the receiver served on the
test's event loop:

- **schemathesis** derives requests for every route of `docs/openapi.yaml`, positive (valid per
  the spec, then given the real passphrase, signature or token so that they reach validation and
  delivery) and negative (violating the spec). Each response must be documented, match its
  schema, and never be a server error.
- **mutated TradingView bodies**: real alerts built from the sample data (SPX and NDX, with and
  without volume, as TradingView renders them: `NaN` for a missing volume, text/plain when the
  message is not valid JSON) are mutated: fields replaced by hostile values (wrong types, NaN and
  infinities, huge and tiny numbers, lone surrogates and other unicode, deep nesting), removed or
  added, the text truncated or spliced, the content type changed.

The counts keep the module within about a minute on the CI machine; `FUZZ_SCALE` multiplies
them for a longer local run.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import DataGenerationMethod
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.models import Case
from schemathesis.types import NotSet

from bot.contracts import Settings, utcnow
from tests.support.consumer import read_topic
from tests.support.webhook import PASSPHRASE, MakeReceiver, signed_headers

pytestmark = [
    pytest.mark.kafka,
    # schemathesis 3 resolves the spec's references with jsonschema's deprecated RefResolver
    pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated:DeprecationWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = ROOT / "docs" / "openapi.yaml"
SAMPLE = ROOT / "data" / "sample"
TOKEN = "test-api-token-0123456789"
SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
UNLIMITED = "1000000/minute"
FUZZ_SETTINGS = {
    "webhook_rate_limit": UNLIMITED,
    "api_rate_limit": UNLIMITED,
    "auth_failure_rate_limit": UNLIMITED,
    "max_bar_age_days": 36500,  # the sample's old bars are valid alerts too
}
CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
)

schemathesis.experimental.OPEN_API_3_1.enable()


def examples(count: int) -> int:
    return max(1, int(count * SCALE))


@dataclass
class Tally:
    """What the receiver answered, and the ids of the alerts it accepted."""

    statuses: dict[int, int] = field(default_factory=dict)
    accepted: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, path: str, response: requests.Response) -> None:
        with self.lock:
            self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
            if path.startswith("/webhook") and response.status_code == 202:
                self.accepted.add(response.json()["alert_id"])

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


async def _on_the_alerts_topic(settings: Settings, ids: set[str]) -> set[str]:
    def arrived(values: list[bytes]) -> bool:
        return ids <= {json.loads(v)["alert_id"] for v in values}

    values = await read_topic(settings.bootstrap, settings.topics.alerts, until=arrived)
    return {json.loads(v)["alert_id"] for v in values}


def _run_in_thread(run: Callable[[], None]) -> asyncio.Future[None]:
    """Blocking HTTP clients in a worker thread, while the test's loop serves the receiver."""
    return asyncio.ensure_future(asyncio.to_thread(run))


# --- schemathesis over docs/openapi.yaml -----------------------------------------------------


def _body_bytes(case: Case) -> bytes | None:
    body = case.body
    if isinstance(body, NotSet):
        return None
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    return json.dumps(body).encode("utf-8", "surrogatepass")


def _authenticate(case: Case, secret: str) -> bytes | None:
    """Give a positive case the real credentials; return the exact body bytes to send."""
    if case.path == "/webhook/tradingview" and isinstance(case.body, dict):
        case.body["passphrase"] = PASSPHRASE
    if case.path == "/predict":
        case.headers = {**(case.headers or {}), "X-API-Token": TOKEN}
    data = _body_bytes(case)
    if case.path == "/webhook" and data is not None:
        signed = signed_headers(data.decode("utf-8", "surrogatepass"), secret)
        case.headers = {**(case.headers or {}), **signed}
    return data


def _send(case: Case, base_url: str, data: bytes | None) -> requests.Response:
    kwargs = case.as_transport_kwargs(base_url=base_url)
    kwargs.pop("json", None)
    kwargs["data"] = data
    if data is not None and case.media_type:
        kwargs["headers"] = {**kwargs.get("headers", {}), "Content-Type": case.media_type}
    return requests.request(**kwargs, timeout=30)


@dataclass
class FuzzContext:
    base_url: str
    secret: str
    tally: Tally


def _fuzz_operation(
    operation: Any, method: DataGenerationMethod, count: int, ctx: FuzzContext
) -> None:
    @settings(
        max_examples=examples(count),
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(data_generation_method=method))
    def fuzz(case: Case) -> None:
        positive = method is DataGenerationMethod.positive
        data = _authenticate(case, ctx.secret) if positive else _body_bytes(case)
        response = _send(case, ctx.base_url, data)
        ctx.tally.record(case.path, response)
        if method is DataGenerationMethod.positive:
            case.validate_response(response, checks=CHECKS)
        else:  # a negative case may be refused with any documented 4xx, never a 5xx
            case.validate_response(response, checks=(not_a_server_error,))

    fuzz()


@pytest.fixture
async def live(
    receiver: MakeReceiver, kafka_settings: Settings, predict_model: str
) -> TestClient[Any, Any]:
    del predict_model
    return await receiver(base=kafka_settings, **FUZZ_SETTINGS)


async def test_schemathesis_finds_no_server_error_on_any_route(
    live: TestClient[Any, Any],
    kafka_settings: Settings,
    webhook_secret: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    schema = schemathesis.from_path(
        str(SPEC_PATH), data_generation_methods=DataGenerationMethod.all()
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    ctx = FuzzContext(str(live.make_url("")).rstrip("/"), webhook_secret, Tally())

    def run() -> None:
        for operation in operations:
            if operation.method.upper() == "POST":
                for method in DataGenerationMethod.all():
                    _fuzz_operation(operation, method, 120, ctx)
            else:  # no parameters and no body: nothing to violate
                _fuzz_operation(operation, DataGenerationMethod.positive, 5, ctx)

    await _run_in_thread(run)
    tally = ctx.tally
    print(f"schemathesis: {tally.requests} requests, statuses {sorted(tally.statuses.items())}")
    assert tally.server_errors == 0
    assert {202, 400, 401, 422} <= set(tally.statuses)  # it reached every layer
    server_log = [r for r in caplog.records if r.name.startswith("aiohttp")]
    assert not [r.getMessage() for r in server_log if r.levelno >= logging.WARNING]
    assert any("malformed HTTP request refused" in r.getMessage() for r in server_log)
    assert tally.accepted <= await _on_the_alerts_topic(kafka_settings, tally.accepted)


# --- mutated real TradingView bodies ---------------------------------------------------------


def _real_alerts() -> list[dict[str, Any]]:
    """Sample bars as TradingView renders the DESIGN.md alert message (recent ones)."""
    alerts: list[dict[str, Any]] = []
    for symbol, exchange in (("SPX", "SP"), ("NDX", "NASDAQ")):
        with (SAMPLE / f"{symbol}_1d.csv").open() as handle:
            rows = list(csv.DictReader(handle))[-40:]
        alerts.extend(
            {
                "passphrase": PASSPHRASE,
                "ticker": symbol,
                "exchange": exchange,
                "interval": "1D",
                "time": row["time"],
                **{k: float(row[k]) for k in ("open", "high", "low", "close")},
                "volume": float(row["volume"]),
                "action": "buy",
            }
            for row in rows
        )
    return alerts


REAL = _real_alerts()
FIELDS = sorted(REAL[0])
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),  # NaN and infinities included
    st.sampled_from([5e-324, 1e308, -0.0, 1e20, 1e13, 10**13 * 1000, 2**63, -(2**63) - 1]),
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8")),
    st.sampled_from(
        [
            "\ud800",
            "\udfff\ud800",
            "\x00",
            "9999-12-31T00:00:00Z",
            "0001-01-01T00:00:00Z",
            "1e20",
            "NaN",
            "Infinity",
            "99999999999999999999999",
            "2026-13-45T99:99:99Z",
            " SPX ",
            "",
        ]
    ),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "text/plain",
        "text/plain; charset=utf-8",
        "application/vnd.tradingview+json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "",
    ]
)


@st.composite
def mutated_bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    document = dict(draw(st.sampled_from(REAL)))
    if draw(st.booleans()):  # an index: TradingView renders the missing volume as NaN
        document["volume"] = math.nan
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["replace", "remove", "add", "nest", "time"]))
        name = draw(st.sampled_from(FIELDS))
        if kind == "replace":
            document[name] = draw(JSON_VALUES)
        elif kind == "remove":
            document.pop(name, None)
        elif kind == "add":
            document[draw(st.text(max_size=20))] = draw(JSON_VALUES)
        elif kind == "nest":
            depth = draw(st.integers(1, 3000))
            document[name] = json.loads("[" * depth + "1" + "]" * depth) if depth < 900 else None
            if depth >= 900:  # deeper than Python's own json can build: spliced in as text
                text = json.dumps(document, allow_nan=True)
                text = text.replace(
                    '"' + name + '": null', f'"{name}": ' + "[" * depth + "]" * depth, 1
                )
                return text.encode("utf-8", "surrogatepass"), draw(CONTENT_TYPES)
        else:
            document["time"] = draw(
                st.one_of(
                    st.floats(),
                    st.integers(min_value=-(10**30), max_value=10**30),
                    st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()),
                    st.just(utcnow().isoformat()),
                )
            )
    text = json.dumps(document, allow_nan=True)  # NaN and Infinity as TradingView writes them
    raw = text.encode("utf-8", "surrogatepass")
    splice = draw(st.sampled_from(["none", "none", "truncate", "insert", "flip"]))
    if splice != "none" and raw:
        at = draw(st.integers(0, len(raw) - 1))
        if splice == "truncate":
            raw = raw[:at]
        elif splice == "insert":
            raw = raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
        else:
            raw = raw[:at] + bytes([raw[at] ^ (1 << draw(st.integers(0, 7)))]) + raw[at + 1 :]
    return raw, draw(CONTENT_TYPES)


async def test_mutated_tradingview_bodies_never_get_a_server_error(
    live: TestClient[Any, Any], kafka_settings: Settings
) -> None:
    url = str(live.make_url("/webhook/tradingview"))
    tally = Tally()
    problems: list[str] = []

    @settings(
        max_examples=examples(700),
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(body=mutated_bodies())
    def fuzz(body: tuple[bytes, str]) -> None:
        raw, content_type = body
        headers = {"Content-Type": content_type} if content_type else {}
        response = requests.post(url, data=raw, headers=headers, timeout=30)
        tally.record("/webhook/tradingview", response)
        assert response.status_code < 500, (raw[:300], response.text)
        answer = response.json()
        if response.status_code >= 400:
            assert set(answer) == {"error", "detail"}, answer
        elif response.status_code not in {200, 202}:
            problems.append(f"unexpected {response.status_code}: {answer}")

    await _run_in_thread(fuzz)
    print(
        f"mutated TradingView bodies: {tally.requests} requests, {sorted(tally.statuses.items())}"
    )
    assert problems == []
    assert tally.server_errors == 0
    assert {202, 400, 415, 422} <= set(tally.statuses)
    assert tally.accepted <= await _on_the_alerts_topic(kafka_settings, tally.accepted)
