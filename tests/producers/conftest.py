"""Fixtures of the receiver's tests."""

from __future__ import annotations

import pytest

from bot.artifacts import registry_from_settings
from bot.contracts import Settings
from tests.support.bundles import make_bundle


@pytest.fixture
def predict_model(settings: Settings) -> str:
    """A champion of SPX in the test's registry, so that `/predict` reaches the predictor."""
    registry = registry_from_settings(settings)
    published = registry.publish(make_bundle())
    registry.promote(published.key, published.version)
    return published.version
