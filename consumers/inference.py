"""Alerts of one symbol -> merged bar window -> features -> every champion model -> `Signal`s.

CPU only (no I/O): the service runs `infer_group` in a worker thread. The features come from
`bot.features.build_features`, the same function that built the training rows, and each model gets
the last `lookback` feature rows of every new bar, all alerts of a batch in one `predict_windows`
call per model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from bot.errors import BadInput, IntegrityError
from bot.features import build_features
from bot.schemas import Alert, DeadLetter, Signal, utcnow
from consumers.deadletters import Reason, RecordRef, dead_letter
from consumers.windows import BarKind, MergedWindow, merge


class PredictionLike(Protocol):
    @property
    def model_key(self) -> str: ...
    @property
    def model_version(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def prediction(self) -> float: ...
    @property
    def probability(self) -> float | None: ...
    @property
    def action(self) -> str: ...
    @property
    def ood(self) -> bool: ...


FloatArray = NDArray[np.float64]
PredictWindows = Callable[[str, FloatArray], Sequence[PredictionLike]]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What the consumer needs to know of a champion to feed it."""

    key: str
    lookback: int
    horizon: int
    interval: str
    feature_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Item:
    """One decoded alert with its record."""

    ref: RecordRef
    alert: Alert


@dataclass(slots=True)
class GroupResult:
    """What one (symbol, interval) group of a batch produced."""

    window: pd.DataFrame
    kinds: tuple[BarKind, ...]
    signals: list[Signal] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    horizons: dict[str, int] = field(default_factory=dict)


def signal_id(alert_id: str, key: str) -> str:
    """Deterministic: a redelivered alert names its signal exactly as the first time."""
    return hashlib.sha256(f"{alert_id}|{key}".encode()).hexdigest()[:32]


def make_signal(alert: Alert, prediction: PredictionLike) -> Signal:
    emitted_at = utcnow()
    latency_ms = max(0.0, (emitted_at - alert.received_at).total_seconds() * 1000)
    return Signal(
        signal_id=signal_id(alert.alert_id, prediction.model_key),
        alert_id=alert.alert_id,
        symbol=alert.symbol,
        interval=alert.interval,
        bar_time=alert.bar_time,
        model_key=prediction.model_key,
        model_version=prediction.model_version,
        target=prediction.target,
        prediction=float(prediction.prediction),
        probability=prediction.probability,
        action=prediction.action,
        ood=bool(prediction.ood),
        latency_ms=latency_ms,
        emitted_at=emitted_at,
    )


def _inputs(
    features: FloatArray, positions: Sequence[int], lookback: int
) -> tuple[FloatArray, list[int]]:
    """Flattened model inputs of the rows at `positions` and the indexes that had full history."""
    rows: list[FloatArray] = []
    usable: list[int] = []
    for i, position in enumerate(positions):
        start = position - lookback + 1
        if start < 0:
            continue
        window = features[start : position + 1]
        if np.isfinite(window).all():
            rows.append(window.reshape(-1))
            usable.append(i)
    width = lookback * features.shape[1]
    return (np.vstack(rows) if rows else np.empty((0, width))), usable


def _run_model(
    spec: ModelSpec,
    features: pd.DataFrame,
    new: Sequence[tuple[Item, int]],
    predict: PredictWindows,
    result: GroupResult,
) -> None:
    missing = [name for name in spec.feature_names if name not in features.columns]
    if missing:
        error = f"{spec.key} was trained on features {missing} that bot.features does not build"
        result.dead_letters.extend(
            dead_letter(item.ref, Reason.PREDICTION_FAILED, error) for item, _ in new
        )
        return
    values = features[list(spec.feature_names)].to_numpy(dtype=float)
    inputs, usable = _inputs(values, [position for _, position in new], spec.lookback)
    for i in sorted(set(range(len(new))) - set(usable)):
        error = f"{spec.key}: fewer than {spec.lookback} complete feature rows before this bar"
        result.dead_letters.append(dead_letter(new[i][0].ref, Reason.INSUFFICIENT_HISTORY, error))
    if not usable:
        return
    try:
        predictions = predict(spec.key, inputs)
    except (BadInput, IntegrityError) as exc:
        for i in usable:
            error = f"{spec.key}: {type(exc).__name__}: {exc}"
            result.dead_letters.append(dead_letter(new[i][0].ref, Reason.PREDICTION_FAILED, error))
        return
    result.horizons[spec.key] = spec.horizon
    result.signals.extend(
        make_signal(new[i][0].alert, prediction)
        for i, prediction in zip(usable, predictions, strict=True)
    )


def infer_group(
    window: pd.DataFrame,
    items: Sequence[Item],
    specs: Sequence[ModelSpec],
    predict: PredictWindows,
) -> GroupResult:
    """Merge the group's bars into its window and predict every new bar with every model."""
    merged: MergedWindow = merge(window, [item.alert for item in items])
    result = GroupResult(window=merged.bars, kinds=merged.kinds)
    new = [
        (item, position)
        for item, kind, position in zip(items, merged.kinds, merged.positions, strict=True)
        if kind is BarKind.NEW
    ]
    if not new or not specs:
        return result
    features = build_features(merged.bars)
    for spec in specs:
        _run_model(spec, features, new, predict, result)
    return result
