"""Kafka: the local single-node broker, topic administration, model events."""

from bot.kafka.admin import _create, admin_client, describe_topics, ensure_topics, topic_specs
from bot.kafka.install import prepare
from bot.kafka.model_events import ModelEventPublisher

__all__ = [
    "ModelEventPublisher",
    "_create",
    "admin_client",
    "describe_topics",
    "ensure_topics",
    "prepare",
    "topic_specs",
]
