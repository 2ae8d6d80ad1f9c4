"""Alerts of one symbol -> bars applied in offset order -> features -> every champion -> `Signal`s.

CPU only (no I/O): the service runs `infer_group` in a worker thread. Every alert is predicted
point-in-time, on the bars up to and including its own (see `consumers.windows`). The features come
from `bot.core.features.build_features`, the same function that built the training rows, computed
only on the slice each alert needs (`WARMUP_BARS + lookback` bars up to it; the features are causal
over a finite window, so the rows equal those of the whole history), and each model gets its
`lookback` rows per alert, all alerts of a batch in one `predict_windows` call per model.

What raises is tagged with the stage it was raised in (`features`: the bars applied to the window
and the features; `predict`: the models and the signals), so that a record that fails alone is
dead-lettered naming it (`consumers.failures`).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from bot.contracts import (
    Action,
    Alert,
    BadInput,
    DeadLetter,
    IntegrityError,
    Signal,
    Target,
    utcnow,
)
from bot.core import FEATURE_NAMES, build_features
from consumers.deadletters import Reason, RecordRef, dead_letter
from consumers.failures import stage
from consumers.windows import BarKind, apply_run, classify, runs


class PredictionLike(Protocol):
    @property
    def model_key(self) -> str: ...
    @property
    def model_version(self) -> str: ...
    @property
    def target(self) -> Target: ...
    @property
    def prediction(self) -> float: ...
    @property
    def probability(self) -> float | None: ...
    @property
    def action(self) -> Action: ...
    @property
    def ood(self) -> bool: ...
    @property
    def score(self) -> float: ...
    @property
    def buy_threshold(self) -> float: ...
    @property
    def sell_threshold(self) -> float: ...


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


def make_signal(
    alert: Alert, prediction: PredictionLike, emitted_at: datetime | None = None
) -> Signal:
    """The signal of one prediction. Built without re-validation: every field comes from a
    validated `Alert` or from the predictor (the tests validate what is published)."""
    emitted_at = emitted_at or utcnow()
    latency_ms = max(0.0, (emitted_at - alert.received_at).total_seconds() * 1000)
    return Signal.model_construct(
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
        score=float(prediction.score),
        buy_threshold=float(prediction.buy_threshold),
        sell_threshold=float(prediction.sell_threshold),
    )


@functools.lru_cache(maxsize=64)
def _columns(feature_names: tuple[str, ...]) -> tuple[NDArray[np.intp], list[str]]:
    """Where a model's features sit in `FEATURE_NAMES`, and the names `build_features` lacks."""
    position = {name: i for i, name in enumerate(FEATURE_NAMES)}
    missing = [name for name in feature_names if name not in position]
    found = [position[name] for name in feature_names if name in position]
    return np.asarray(found, dtype=np.intp), missing


@dataclass(frozen=True, slots=True)
class _Row:
    """An alert's feature row: `features[row]` is its bar (features of a slice of bars)."""

    index: int  # the alert's position in the group
    features: FloatArray
    row: int


def _clusters(positions: Sequence[int], size: int) -> list[list[int]]:
    """Indexes into sorted `positions` grouped so that one feature slice serves each group."""
    order = sorted(range(len(positions)), key=positions.__getitem__)
    found: list[list[int]] = []
    for i in order:
        if found and positions[i] - positions[found[-1][-1]] < size:
            found[-1].append(i)
        else:
            found.append([i])
    return found


def _feature_rows(
    history: pd.DataFrame, alerts: Sequence[Alert], size: int
) -> tuple[pd.DataFrame, list[_Row]]:
    """Apply the alerts' bars run by run; the feature row of each alert at its offset."""
    frame = history
    rows: list[_Row] = []
    for run in runs(alerts):
        frame, positions = apply_run(frame, [alerts[i] for i in run])
        for cluster in _clusters(positions, size):
            first = max(0, positions[cluster[0]] - size + 1)
            last = positions[cluster[-1]] + 1
            features = build_features(frame.iloc[first:last]).to_numpy(dtype=float)
            rows.extend(_Row(run[i], features, positions[i] - first) for i in cluster)
    return frame, rows


def _inputs(
    rows: Sequence[_Row], columns: NDArray[np.intp], lookback: int
) -> tuple[FloatArray, list[int]]:
    """Flattened model inputs of the rows and which of them had complete history."""
    inputs: list[FloatArray] = []
    usable: list[int] = []
    for i, row in enumerate(rows):
        start = row.row - lookback + 1
        if start < 0:
            continue
        window = row.features[start : row.row + 1, columns]
        if np.isfinite(window).all():
            inputs.append(window.reshape(-1))
            usable.append(i)
    width = lookback * len(columns)
    return (np.vstack(inputs) if inputs else np.empty((0, width))), usable


def _run_model(
    spec: ModelSpec,
    rows: Sequence[_Row],
    items: Sequence[Item],
    predict: PredictWindows,
    result: GroupResult,
) -> None:
    columns, missing = _columns(spec.feature_names)
    if missing:
        error = (
            f"{spec.key} was trained on features {missing} that bot.core.features does not build"
        )
        result.dead_letters.extend(
            dead_letter(items[row.index].ref, Reason.PREDICTION_FAILED, error) for row in rows
        )
        return
    with stage("features"):
        inputs, usable = _inputs(rows, columns, spec.lookback)
    for i in sorted(set(range(len(rows))) - set(usable)):
        error = f"{spec.key}: fewer than {spec.lookback} complete feature rows before this bar"
        ref = items[rows[i].index].ref
        result.dead_letters.append(dead_letter(ref, Reason.INSUFFICIENT_HISTORY, error))
    if not usable:
        return
    with stage("predict"):
        try:
            predictions = predict(spec.key, inputs)
        except (BadInput, IntegrityError) as exc:
            for i in usable:
                error = f"{spec.key}: {type(exc).__name__}: {exc}"
                ref = items[rows[i].index].ref
                result.dead_letters.append(dead_letter(ref, Reason.PREDICTION_FAILED, error))
            return
        result.horizons[spec.key] = spec.horizon
        emitted_at = utcnow()
        for i, prediction in zip(usable, predictions, strict=True):
            item = items[rows[i].index]
            if _finite(prediction):
                result.signals.append(make_signal(item.alert, prediction, emitted_at))
            else:  # finite inputs the model still cannot take: never a NaN signal
                error = f"{spec.key}: the model returned a non-finite prediction for this bar"
                result.dead_letters.append(dead_letter(item.ref, Reason.PREDICTION_FAILED, error))


def _finite(prediction: PredictionLike) -> bool:
    probability = prediction.probability
    return math.isfinite(prediction.prediction) and (
        probability is None or math.isfinite(probability)
    )


def infer_group(
    history: pd.DataFrame,
    items: Sequence[Item],
    specs: Sequence[ModelSpec],
    predict: PredictWindows,
    size: int,
) -> GroupResult:
    """Apply the group's bars to its history and predict every alert, point-in-time.

    `history` holds at least the `size` stored bars up to each alert's bar (or all there are).
    """
    alerts = [item.alert for item in items]
    with stage("features"):  # the bars applied to the window, then the features
        kinds = classify(history, alerts)
        frame, rows = _feature_rows(history, alerts, size) if specs else (history, [])
        result = GroupResult(window=frame.iloc[-size:], kinds=kinds)
    for spec in specs:
        _run_model(spec, rows, items, predict, result)
    return result
