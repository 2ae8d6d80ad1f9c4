"""Fixtures of the artifact tests."""

from __future__ import annotations

import pytest

from bot.contracts import Settings


@pytest.fixture
def on_broker(
    kafka_settings: Settings, monkeypatch: pytest.MonkeyPatch, cli_in_process: None
) -> Settings:
    """`itff rollback` run from a test: it announces on the models topic of the test's broker."""
    monkeypatch.setenv("ITFF_KAFKA_BOOTSTRAP", kafka_settings.bootstrap)
    monkeypatch.setenv("ITFF_TOPIC_PREFIX", kafka_settings.topic_prefix)
    return kafka_settings
