"""The environment of an `itff` child process started by a test or a benchmark."""

from __future__ import annotations

import os

from bot.contracts import Settings


def child_env(settings: Settings | None = None, **variables: str) -> dict[str, str]:
    """This process's environment without any `ITFF_` variable (the developer's own must not leak
    in), then the core of `settings` (broker, topics, database, artifacts, logs), then `variables`
    (full names: `ITFF_LOG_JSON="false"`)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ITFF_")}
    if settings is not None:
        env |= {
            "ITFF_ENV": "test",
            "ITFF_KAFKA_BOOTSTRAP": settings.bootstrap,
            "ITFF_TOPIC_PREFIX": settings.topic_prefix,
            "ITFF_DATABASE_URL": settings.database_url,
            "ITFF_ARTIFACT_DIR": str(settings.artifact_dir),
            "ITFF_LOG_DIR": str(settings.log_dir),
        }
    return env | variables
