"""Serving: the predictor over verified champions, and installing remote champions."""

from bot.serving.install import configured_keys, pull_champions, pull_key
from bot.serving.predictor import Prediction, Predictor

__all__ = [
    "Prediction",
    "Predictor",
    "configured_keys",
    "pull_champions",
    "pull_key",
]
