"""The champion models as the consumer sees them: specs per symbol, batched predictions, reload.

A thin layer over `bot.serving.predictor.Predictor`, which verifies, loads and swaps bundles; this
class tells the consumer what each served bundle needs as input (features, lookback, interval).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from bot.artifacts import registry_from_settings
from bot.contracts import ItffError, Settings
from bot.contracts.bars import canonical_interval
from bot.core import ModelBundle
from bot.runtime import get_logger
from bot.serving import Prediction, Predictor
from consumers.inference import FloatArray, ModelSpec, PredictionLike

log = get_logger(__name__)


class ServedModels(Protocol):
    def specs(self, symbol: str) -> Sequence[ModelSpec]: ...
    def predict_windows(self, key: str, windows: FloatArray) -> Sequence[PredictionLike]: ...
    def reload(self, key: str) -> str: ...
    def served_versions(self) -> dict[str, str]: ...
    def champion_versions(self) -> dict[str, str]: ...


def spec_of(bundle: ModelBundle) -> ModelSpec:
    return ModelSpec(
        key=bundle.key,
        lookback=bundle.lookback,
        horizon=bundle.horizon,
        interval=canonical_interval(bundle.interval),
        feature_names=bundle.feature_names,
    )


class PredictorModels:
    """Thread-safe, as the predictor is: worker threads read specs while a reload swaps them.

    A symbol's specs are cached (the registry is a folder tree: reading it for every batch cost
    more than the predictions); a reload drops the cache, and it is re-read at least every
    `max_age` seconds, so a champion promoted without an event is picked up too.
    """

    def __init__(self, predictor: Predictor, *, max_age: float = 60.0) -> None:
        self.predictor = predictor
        self.max_age = max_age
        self._specs: dict[str, tuple[float, list[ModelSpec]]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> PredictorModels:
        return cls(Predictor(registry_from_settings(settings), runtime=settings.serving_runtime))

    def specs(self, symbol: str) -> list[ModelSpec]:
        """Specs of the symbol's champions; one that cannot be loaded is left out and logged."""
        cached = self._specs.get(symbol)
        if cached is not None and time.monotonic() - cached[0] <= self.max_age:
            return cached[1]
        found = self._read_specs(symbol)
        self._specs[symbol] = (time.monotonic(), found)
        return found

    def _read_specs(self, symbol: str) -> list[ModelSpec]:
        found: list[ModelSpec] = []
        for key in self.predictor.champion_keys(symbol):
            try:
                found.append(spec_of(self.predictor.bundle(key)))
            except ItffError as exc:
                log.error("champion cannot be served; skipped", model_key=key, error=str(exc))
        return found

    def predict_windows(self, key: str, windows: FloatArray) -> list[Prediction]:
        return self.predictor.predict_windows(key, windows)

    def reload(self, key: str) -> str:
        """Verify and swap in the key's champion; raises (and changes nothing) when refused."""
        try:
            return self.predictor.reload(key).version
        finally:
            self._specs.clear()  # a new key or lookback: read the specs again

    def served_versions(self) -> dict[str, str]:
        return self.predictor.served_versions()

    def champion_versions(self) -> dict[str, str]:
        return self.predictor.registry.champions()
