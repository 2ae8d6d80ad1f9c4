"""`POST /predict`: the synchronous API over the predictor, run off the event loop."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import asdict, is_dataclass
from typing import Annotated, Any, Self

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.contracts import (
    BadInput,
    IntegrityError,
    NotFound,
    Price,
    Settings,
    Symbol,
    UtcDatetime,
    Volume,
)
from bot.runtime import get_logger
from producers.responses import ApiError

log = get_logger(__name__)

MAX_BARS = 5000
MAX_ROWS = 1000


class PredictBar(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time: UtcDatetime
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Volume = None


class PredictRequest(BaseModel):
    """Either `bars` (the predictor builds features) or `model_key` + named feature `rows`."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    symbol: Symbol
    bars: Annotated[list[PredictBar], Field(min_length=1, max_length=MAX_BARS)] | None = None
    model_key: str | None = None
    rows: Annotated[list[dict[str, float]], Field(min_length=1, max_length=MAX_ROWS)] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if (self.bars is None) == (self.rows is None):
            raise ValueError("send either 'bars' or 'model_key' with 'rows', not both or neither")
        if self.rows is not None and not self.model_key:
            raise ValueError("'rows' need 'model_key' (e.g. SPX-direction-logreg)")
        return self


def bars_frame(bars: list[PredictBar]) -> pd.DataFrame:
    """The bars frame of the contract: UTC `DatetimeIndex` named `time`, sorted, float64."""
    frame = pd.DataFrame([bar.model_dump() for bar in bars])
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame = frame.set_index("time").sort_index().astype("float64")
    if frame.index.has_duplicates:
        raise BadInput("bars: two bars have the same time; send each bar once")
    return frame


def _as_dict(prediction: Any) -> dict[str, Any]:
    fields = (
        "model_key", "model_version", "target", "prediction", "probability", "action", "ood",
        "score", "buy_threshold", "sell_threshold",
    )  # fmt: skip
    is_instance = is_dataclass(prediction) and not isinstance(prediction, type)
    source = asdict(prediction) if is_instance else vars(prediction)
    return {name: source[name] for name in fields}


class PredictionService:
    """Owns the predictor; built from the artifact registry on first use unless one is given."""

    def __init__(self, settings: Settings, predictor: Any | None = None) -> None:
        self._settings = settings
        self._predictor = predictor
        self._lock = threading.Lock()

    def _get(self) -> Any:
        with self._lock:
            if self._predictor is None:
                from bot.artifacts import registry_from_settings
                from bot.serving import Predictor

                self._predictor = Predictor(
                    registry_from_settings(self._settings), runtime=self._settings.serving_runtime
                )
            return self._predictor

    def _current(self) -> Any:
        """The predictor, following champion promotions and rollbacks made since the last call."""
        predictor = self._get()
        try:
            predictor.refresh()
        except IntegrityError as exc:  # the new champion is refused; the verified one keeps serving
            log.warning("new champion refused; previous version keeps serving", error=str(exc))
        return predictor

    def run(self, request: PredictRequest) -> list[dict[str, Any]]:
        predictor = self._current()
        if request.bars is not None:
            predictions = predictor.predict_bars(request.symbol, bars_frame(request.bars))
        else:
            predictions = predictor.predict_rows(request.model_key, pd.DataFrame(request.rows))
        return [_as_dict(p) for p in predictions]

    async def predict(self, request: PredictRequest) -> list[dict[str, Any]]:
        try:
            return await asyncio.to_thread(self.run, request)
        except NotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from exc
        except BadInput as exc:
            raise ApiError(422, "bad_sequence", str(exc)) from exc
        except IntegrityError as exc:
            raise ApiError(409, "conflict", str(exc)) from exc
