"""docs/openapi.yaml against the running receiver: every route documented, every documented status
code produced by a real request, and every response body valid against its documented schema."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy import text

from bot.contracts import Settings
from storage.bars import BarRecord, upsert_bars
from storage.db import create_engine, create_session_factory
from tests.support.webhook import MakeReceiver, dumps, signed_headers, tv_message

pytestmark = pytest.mark.kafka

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
REGISTRY = Registry().with_resource(
    "urn:itff", Resource.from_contents(SPEC, default_specification=DRAFT202012)
)
TOKEN = {"X-API-Token": "test-api-token-0123456789"}
TV, SIGNED = "/webhook/tradingview", "/webhook"
INTERNAL = 500


def _response_schema(path: str, method: str, status: int) -> tuple[dict[str, Any], dict[str, Any]]:
    response = SPEC["paths"][path][method]["responses"][str(status)]
    if "$ref" in response:
        response = SPEC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response, response["content"]


async def check(response: ClientResponse, path: str, method: str = "post") -> int:
    documented, content = _response_schema(path, method, response.status)
    if "application/json" in content:
        schema = content["application/json"]["schema"]
        if "$ref" in schema:
            schema = {"$ref": "urn:itff" + schema["$ref"]}
        Draft202012Validator(schema, registry=REGISTRY).validate(await response.json())
    else:
        assert response.content_type == "text/plain"
    for header in documented.get("headers", {}):
        assert header in response.headers, f"{path} {response.status} lacks {header}"
    return response.status


def _own_db(settings: Settings, name: str) -> str:
    return settings.database_url.replace("itff.db", f"{name}.db")


async def _broken_outbox(receiver: MakeReceiver, settings: Settings) -> TestClient[Any, Any]:
    """Kafka down and the outbox table gone: the one case the receiver must answer 503."""
    url = _own_db(settings, "broken")
    client = await receiver(database_url=url)
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE outbox"))
    await engine.dispose()
    return client


async def test_spec_is_valid_and_lists_exactly_the_app_routes(
    receiver: MakeReceiver,
) -> None:
    validate_spec(SPEC)
    client = await receiver()
    routes = {
        (route.resource.canonical, route.method.lower())
        for route in client.app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {(path, method) for path, item in SPEC["paths"].items() for method in item}
    assert routes == documented


OLD = [f"2026-09-{day:02d}T00:00:00Z" for day in range(1, 11)]


async def _store_old_bars(settings: Settings) -> None:
    """Ten stored daily bars of SPX: changing the first two is rewriting history (409)."""
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            bars = [
                BarRecord("SPX", "1D", datetime.fromisoformat(t), 100.0, 110.0, 95.0, 105.0, 1e3)
                for t in OLD
            ]
            await upsert_bars(session=session, bars=bars)
    finally:
        await engine.dispose()


async def test_every_documented_status_is_produced_and_matches_its_schema(
    receiver: MakeReceiver,
    kafka_settings: Settings,
    webhook_secret: str,
    predict_model: str,
) -> None:
    del predict_model
    live = await receiver(base=kafka_settings)
    down = await receiver(
        webhook_rate_limit="1/minute",
        api_rate_limit="1/minute",
        database_url=_own_db(kafka_settings, "down"),
    )
    walled = await receiver(ip_allowlist_enabled=True, database_url=_own_db(kafka_settings, "ip"))
    broken = await _broken_outbox(receiver, kafka_settings)
    seen: dict[tuple[str, str], set[int]] = {}

    async def run(path: str, response: ClientResponse, method: str = "post") -> None:
        seen.setdefault((path, method), set()).add(await check(response, path, method))

    def signed(document: dict[str, Any], **kw: Any) -> tuple[str, dict[str, str]]:
        body = dumps(document)
        return body, signed_headers(body, webhook_secret, **kw)

    await _store_old_bars(kafka_settings)

    # TradingView endpoint
    await run(TV, await live.post(TV, json=tv_message(time=OLD[0], close=106.0)))
    await run(TV, await live.post(TV, json=tv_message()))
    await run(TV, await live.post(TV, json=tv_message()))
    await run(TV, await live.post(TV, data="{", headers={"Content-Type": "text/plain"}))
    await run(TV, await live.post(TV, json=tv_message(passphrase="wrong")))
    await run(TV, await walled.post(TV, json=tv_message()))
    big = io.BytesIO(dumps(tv_message(note="x" * 200_000)).encode())
    await run(TV, await live.post(TV, data=big, headers={"Content-Type": "application/json"}))
    await run(TV, await live.post(TV, data="x", headers={"Content-Type": "image/png"}))
    await run(TV, await live.post(TV, json=tv_message(close=-1)))
    await down.post(TV, json=tv_message(time="2026-01-05T00:00:00Z"))
    await run(TV, await down.post(TV, json=tv_message()))
    await run(TV, await broken.post(TV, json=tv_message()))

    # signed endpoint
    body, headers = signed(tv_message(passphrase=...), msg_id="msg_contract_0001")
    await run(SIGNED, await live.post(SIGNED, data=body, headers=headers))
    await run(SIGNED, await live.post(SIGNED, data=body, headers=headers))
    await run(
        SIGNED, await live.post(SIGNED, data="[", headers=signed_headers("[", webhook_secret))
    )
    await run(
        SIGNED, await live.post(SIGNED, data=body, headers={"Content-Type": "application/json"})
    )
    big_body = dumps(tv_message(passphrase=..., note="x" * 200_000))
    big_headers = signed_headers(big_body, webhook_secret)
    big_data = io.BytesIO(big_body.encode())
    await run(SIGNED, await live.post(SIGNED, data=big_data, headers=big_headers))
    wrong_type = signed_headers(body, webhook_secret) | {"content-type": "application/xml"}
    await run(SIGNED, await live.post(SIGNED, data=body, headers=wrong_type))
    bad_body, bad_headers = signed(tv_message(passphrase=..., volume=-1))
    await run(SIGNED, await live.post(SIGNED, data=bad_body, headers=bad_headers))
    old_body, old_headers = signed(tv_message(passphrase=..., time=OLD[1], close=106.0))
    await run(SIGNED, await live.post(SIGNED, data=old_body, headers=old_headers))
    body1, headers1 = signed(tv_message(passphrase=..., time="2026-01-07T00:00:00Z"))
    await down.post(SIGNED, data=body1, headers=headers1)
    body2, headers2 = signed(tv_message(passphrase=..., time="2026-01-06T00:00:00Z"))
    await run(SIGNED, await down.post(SIGNED, data=body2, headers=headers2))
    body3, headers3 = signed(tv_message(passphrase=...))
    await run(SIGNED, await broken.post(SIGNED, data=body3, headers=headers3))

    # /predict
    rows = [
        {"ret_1": 0.1, "ret_5": 0.2, "rsi_14": 50.0},
        {"ret_1": 0.0, "ret_5": 0.1, "rsi_14": 55.0},
    ]
    good = {"symbol": "SPX", "model_key": "SPX-direction-logreg", "rows": rows}
    await run("/predict", await live.post("/predict", json=good, headers=TOKEN))
    await run(
        "/predict",
        await live.post(
            "/predict", data="nope", headers=TOKEN | {"Content-Type": "application/json"}
        ),
    )
    await run("/predict", await live.post("/predict", json=good))
    await run(
        "/predict",
        await live.post(
            "/predict", json=good | {"model_key": "NDX-direction-logreg"}, headers=TOKEN
        ),
    )
    await run(
        "/predict",
        await live.post("/predict", data="{}", headers=TOKEN | {"Content-Type": "application/xml"}),
    )
    await run("/predict", await live.post("/predict", json={"symbol": "SPX"}, headers=TOKEN))
    huge = io.BytesIO(dumps(good | {"note": "x" * 200_000}).encode())
    await run(
        "/predict",
        await live.post(
            "/predict", data=huge, headers=TOKEN | {"Content-Type": "application/json"}
        ),
    )
    await down.post("/predict", json=good, headers=TOKEN)
    await run("/predict", await down.post("/predict", json=good, headers=TOKEN))
    model = kafka_settings.artifact_dir / "SPX-direction-logreg"
    for path in model.glob("*/model.linear.json"):  # the file /predict serves (compiled form)
        path.write_bytes(path.read_bytes() + b"!")
    fresh = await receiver(base=kafka_settings)
    await run("/predict", await fresh.post("/predict", json=good, headers=TOKEN))

    # operations
    await run("/health", await live.get("/health"), "get")
    await run("/ready", await live.get("/ready"), "get")
    await run("/ready", await down.get("/ready"), "get")

    # 500 is documented on every route (the error middleware answers any unexpected failure with
    # JSON `internal`), but no correct request can make the receiver fail: exempt from "produced".
    documented = {
        (path, method): {int(code) for code in op["responses"]} - {INTERNAL}
        for path, item in SPEC["paths"].items()
        for method, op in item.items()
    }
    assert seen == documented


def test_every_route_documents_the_internal_error() -> None:
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            response = operation["responses"].get(str(INTERNAL))
            assert response == {"$ref": "#/components/responses/Internal"}, f"{method} {path}"
    schema = SPEC["components"]["responses"]["Internal"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Error"}
