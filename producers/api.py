"""`POST /predict`, `GET /health` (liveness), `GET /ready` (readiness), `GET /metrics`."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from producers import parsing
from producers.auth import check_api_token
from producers.prediction import PredictRequest
from producers.state import DELIVERY, GUARDS, METRICS, PREDICTION, READINESS, SETTINGS, client_of


async def predict(request: web.Request) -> web.Response:
    settings, limits = request.app[SETTINGS], request.app[GUARDS].limits
    async with limits.unauthenticated(client_of(request)):
        check_api_token(request.headers.get("X-API-Token"), settings.api_token)
    await limits.hit("api", "token", who="the API token")
    parsing.check_content_type(request)
    document = parsing.parse_object(await request.read())
    payload = parsing.validate(PredictRequest, document)
    if payload.bars is not None:
        for index, bar in enumerate(payload.bars):  # bars of the configured interval
            field = f"bars.{index}.time"
            parsing.check_time(bar.time, settings.interval, settings.bar_bounds, field=field)
    predictions = await request.app[PREDICTION].predict(payload)
    return web.json_response({"symbol": payload.symbol, "predictions": predictions})


async def health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """200 when Kafka answered the last probe; 503 otherwise (alerts are still accepted into the
    outbox). From cached state (`producers.readiness`): no broker request per call."""
    kafka = request.app[READINESS].kafka
    body: dict[str, object] = {
        "status": "ready" if kafka else "degraded",
        "kafka": kafka,
        "outbox_depth": request.app[DELIVERY].outbox.depth,
    }
    if not kafka:
        body |= {
            "error": "kafka_unreachable",
            "detail": "Kafka does not answer; alerts are accepted into the outbox and delivered "
            "once it is back",
        }
    return web.json_response(body, status=200 if kafka else 503)


async def metrics(request: web.Request) -> web.Response:
    response = web.Response(body=request.app[METRICS].render())
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response
