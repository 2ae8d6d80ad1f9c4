"""Kafka topic names, in one place.

Every process derives its topic names from `Topics.from_prefix(settings.topic_prefix)`, so tests can
run against their own topics on a shared broker.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "itff"
INFERENCE_GROUP = "itff-inference"
OUTCOME_GROUP = "itff-outcomes"


@dataclass(frozen=True, slots=True)
class Topics:
    alerts: str
    signals: str
    dlq: str
    models: str

    @classmethod
    def from_prefix(cls, prefix: str = DEFAULT_PREFIX) -> Topics:
        return cls(
            alerts=f"{prefix}.alerts",
            signals=f"{prefix}.signals",
            dlq=f"{prefix}.alerts.dlq",
            models=f"{prefix}.models",
        )

    def all(self) -> tuple[str, ...]:
        return (self.alerts, self.signals, self.dlq, self.models)


TOPICS = Topics.from_prefix()
