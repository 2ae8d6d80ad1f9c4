"""Kafka: the local single-node broker, topic administration, model events, dead letters."""

from bot.kafka.admin import _create, admin_client, describe_topics, ensure_topics, topic_specs
from bot.kafka.deadletters import (
    DeadLetters,
    LetterFilter,
    ReplayPlan,
    StoredLetter,
    parse_when,
    plan_replay,
    read_dead_letters,
    republish,
)
from bot.kafka.install import prepare
from bot.kafka.model_events import ModelEventPublisher

__all__ = [
    "DeadLetters",
    "LetterFilter",
    "ModelEventPublisher",
    "ReplayPlan",
    "StoredLetter",
    "_create",
    "admin_client",
    "describe_topics",
    "ensure_topics",
    "parse_when",
    "plan_replay",
    "prepare",
    "read_dead_letters",
    "republish",
    "topic_specs",
]
