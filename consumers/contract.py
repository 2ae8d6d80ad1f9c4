"""The consumer app's AsyncAPI document: every topic, generated from the FastStream app itself.

The app reads alerts as raw records (it validates each against `Alert` itself, so that a bad one
is dead-lettered with its reason instead of failing its batch) and sends signals and dead letters
through its own producer (`consumers.app.Emitter`). `document` declares those three messages on
the broker with their pydantic models, so the document names the schema of every topic; the
models topic is described by the reload subscriber itself. `itff contract generate` writes it to
docs/asyncapi.yaml.
"""

from __future__ import annotations

from typing import Any

import yaml
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from bot.contracts import Alert, DeadLetter, Settings, Signal

TITLE = "ITFF"
DESCRIPTION = (
    "The topics of ITFF (Intelligent Trading Forecast Framework). Every message is JSON with a "
    "`schema_version`; docs/schemas/<topic>/v<N>.json keeps the JSON Schema of each released "
    "version, and docs/release.md says which changes a version may make."
)


def document(broker: KafkaBroker, settings: Settings) -> None:
    """Declare the messages the app reads raw or sends through its own producer."""
    topics = settings.topics
    broker.publisher(
        topics.alerts,
        title=topics.alerts,
        schema=Alert,
        description=(
            "Bars from TradingView, signed clients and the replayer; key = symbol. Sent by the "
            "webhook receiver (`itff webhook`), `itff replay` and `itff dlq replay`; read by the "
            "inference consumers (group `itff-inference`)."
        ),
    )
    broker.publisher(
        topics.signals,
        title=topics.signals,
        schema=Signal,
        description=(
            "One model's forecast for one alert; key = symbol. Sent by the inference consumers "
            "once stored; at least once: `signal_id` (and `alert_id` with `model_key`) make "
            "a redelivered signal recognisable. Read by `itff signals tail`, `itff notifier` "
            "and downstream subscribers."
        ),
    )
    broker.publisher(
        topics.dlq,
        title=topics.dlq,
        schema=DeadLetter,
        description=(
            "Alert records that could not be processed, with the reason and the stage; the "
            "original bytes in base64. Read by `itff dlq list|show|replay`."
        ),
    )


def specification(settings: Settings) -> AsyncAPI:
    """The AsyncAPI 3.0 document of the consumer app as `running_consumer` wires it."""
    from consumers.app import add_inference, add_reload, create_broker
    from consumers.served_models import PredictorModels

    broker = create_broker(settings)
    models = PredictorModels.from_settings(settings)
    # never connected: the subscriber is only declared
    sessions = async_sessionmaker(create_async_engine("sqlite+aiosqlite://"))
    add_inference(broker, settings, session_factory=sessions, models=models)
    add_reload(broker, settings, models=models)
    document(broker, settings)
    return AsyncAPI(
        broker, title=TITLE, version="1", description=DESCRIPTION, schema_version="3.0.0"
    )


def asyncapi_yaml(settings: Settings) -> str:
    """The document as YAML, its channels, operations and components in name order (FastStream
    lists publishers in no fixed order)."""
    document: dict[str, Any] = specification(settings).to_specification().to_jsonable()
    for section in (document, document.get("components", {})):
        for key in ("channels", "operations", "messages", "schemas"):
            if key in section:
                section[key] = dict(sorted(section[key].items()))
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
