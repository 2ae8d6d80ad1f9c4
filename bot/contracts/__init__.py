"""Contracts: what every part agrees on. Errors, wire schemas, topic names, settings."""

from bot.contracts.errors import (
    BadInput,
    ConfigError,
    IntegrityError,
    ItffError,
    NotFound,
    TransientError,
)
from bot.contracts.schemas import (
    Action,
    Alert,
    AlertSource,
    DeadLetter,
    ModelEvent,
    ModelEventKind,
    Price,
    Signal,
    Symbol,
    Target,
    TradingViewMessage,
    UtcDatetime,
    Volume,
    model_key,
    utcnow,
)
from bot.contracts.settings import Settings, load_settings, service_settings
from bot.contracts.topics import DEFAULT_PREFIX, INFERENCE_GROUP

__all__ = [
    "DEFAULT_PREFIX",
    "INFERENCE_GROUP",
    "Action",
    "Alert",
    "AlertSource",
    "BadInput",
    "ConfigError",
    "DeadLetter",
    "IntegrityError",
    "ItffError",
    "ModelEvent",
    "ModelEventKind",
    "NotFound",
    "Price",
    "Settings",
    "Signal",
    "Symbol",
    "Target",
    "TradingViewMessage",
    "TransientError",
    "UtcDatetime",
    "Volume",
    "load_settings",
    "model_key",
    "service_settings",
    "utcnow",
]
