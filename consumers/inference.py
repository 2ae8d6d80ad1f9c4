"""A batch's alerts, grouped by symbol -> bars applied in offset order -> features -> every
champion -> `Signal`s.

CPU only (no I/O): the service runs `infer_batch` in a worker thread. Every alert is predicted
point-in-time, on the bars up to and including its own (see `consumers.windows`). The features come
from `bot.core.features` (the code that built the training rows), computed only on the slice each
alert needs (`WARMUP_BARS + lookback` bars up to it; the features are causal over a finite window,
so the rows equal those of the whole history), for the slices of every symbol of the batch in one
numpy pass (`complete_feature_rows`). Each model gets its `lookback` rows per alert, all alerts of
a batch in one `predict_windows` call per model.

What raises is tagged with the stage it was raised in (`features`: the bars applied to the window
and the features; `predict`: the models and the signals), so that a record that fails alone is
dead-lettered naming it (`consumers.failures`).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np
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
from bot.core import FEATURE_NAMES, WARMUP_BARS, complete_feature_rows, feature_rows
from consumers.deadletters import Reason, RecordRef, dead_letter
from consumers.failures import stage
from consumers.windows import (
    BarArrays,
    BarKind,
    WindowKey,
    apply_run_arrays,
    classify,
    runs,
)


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

    window: BarArrays
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
    validated `Alert` or from the predictor (the tests validate what is published); every field
    of a blank signal is replaced (half the cost of `model_construct`)."""
    emitted_at = emitted_at or utcnow()
    latency_ms = max(0.0, (emitted_at - alert.received_at).total_seconds() * 1000)
    return _blank_signal().model_copy(update={
        "signal_id": signal_id(alert.alert_id, prediction.model_key),
        "alert_id": alert.alert_id,
        "symbol": alert.symbol,
        "interval": alert.interval,
        "bar_time": alert.bar_time,
        "model_key": prediction.model_key,
        "model_version": prediction.model_version,
        "target": prediction.target,
        "prediction": float(prediction.prediction),
        "probability": prediction.probability,
        "action": prediction.action,
        "ood": bool(prediction.ood),
        "latency_ms": latency_ms,
        "emitted_at": emitted_at,
        "score": float(prediction.score),
        "buy_threshold": float(prediction.buy_threshold),
        "sell_threshold": float(prediction.sell_threshold),
    })  # fmt: skip


@functools.cache
def _blank_signal() -> Signal:
    fields: dict[str, Any] = {
        name: None for name in Signal.model_fields if name != "schema_version"
    }
    return Signal.model_construct(**fields)


@functools.lru_cache(maxsize=64)
def _columns(feature_names: tuple[str, ...]) -> tuple[NDArray[np.intp], list[str]]:
    """Where a model's features sit in `FEATURE_NAMES`, and the names `build_features` lacks."""
    position = {name: i for i, name in enumerate(FEATURE_NAMES)}
    missing = [name for name in feature_names if name not in position]
    found = [position[name] for name in feature_names if name in position]
    return np.asarray(found, dtype=np.intp), missing


@dataclass(frozen=True, slots=True)
class GroupInput:
    """One (symbol, interval) group of a batch: its history, its alerts, its champions."""

    history: BarArrays
    items: Sequence[Item]
    specs: Sequence[ModelSpec]


@dataclass(frozen=True, slots=True)
class _Row:
    """An alert's feature row in the batch's feature matrix."""

    index: int  # the alert's position in the group
    row: int  # its bar's feature row
    first: int  # the first row of its slice of bars: no window reaches further back


@dataclass(slots=True)
class _Slices:
    """The bar slices a batch needs features of, with the alerts each one serves.

    A *complete* slice holds `size` bars up to its first alert, so every row an alert's window
    needs lies `WARMUP_BARS` or more into it: all complete slices of a batch, whatever their
    symbol, go through one numpy pass (`complete_feature_rows`). A slice that reaches the start
    of the stored history (a young symbol) is computed alone, warm-up rows included.
    """

    complete: list[FloatArray] = field(default_factory=list)
    partial: list[FloatArray] = field(default_factory=list)
    # per slice, in the order above once joined: (group, alert index, bar offset in the slice)
    complete_alerts: list[list[tuple[WindowKey, int, int]]] = field(default_factory=list)
    partial_alerts: list[list[tuple[WindowKey, int, int]]] = field(default_factory=list)

    def add(
        self, key: WindowKey, bars: BarArrays, positions: Sequence[int], alerts: Sequence[int],
        size: int,
    ) -> None:  # fmt: skip
        for cluster in _clusters(positions, size):
            start = positions[cluster[0]] - size + 1
            first, last = max(0, start), positions[cluster[-1]] + 1
            served = [(key, alerts[i], positions[i] - first) for i in cluster]
            target, alerts_of = (
                (self.complete, self.complete_alerts)
                if start >= 0
                else (self.partial, self.partial_alerts)
            )
            target.append(bars.ohlcv[first:last])
            alerts_of.append(served)

    def features(self) -> tuple[FloatArray, dict[WindowKey, list[_Row]]]:
        """The feature matrix of every slice, and each group's alert rows in it (offset order)."""
        blocks = complete_feature_rows(self.complete)
        skipped = [WARMUP_BARS] * len(blocks)
        blocks += [feature_rows(bars) for bars in self.partial]
        skipped += [0] * len(self.partial)
        rows: dict[WindowKey, list[_Row]] = {}
        begin = 0
        for block, skip, served in zip(
            blocks, skipped, self.complete_alerts + self.partial_alerts, strict=True
        ):
            for key, index, offset in served:
                rows.setdefault(key, []).append(_Row(index, begin + offset - skip, begin))
            begin += len(block)
        width = len(FEATURE_NAMES)
        matrix: FloatArray = np.concatenate(blocks) if blocks else np.empty((0, width))
        for found in rows.values():
            found.sort(key=lambda row: row.index)
        return matrix, rows


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


def _apply(
    key: WindowKey, bars: BarArrays, alerts: Sequence[Alert], size: int, slices: _Slices
) -> BarArrays:
    """Apply the alerts' bars run by run (each run's slices taken from the bars at its offset)."""
    for run in runs(alerts):
        bars, positions = apply_run_arrays(bars, [alerts[i] for i in run])
        slices.add(key, bars, positions, run, size)
    return bars


def _inputs(
    features: FloatArray, rows: Sequence[_Row], columns: NDArray[np.intp], lookback: int
) -> tuple[FloatArray, list[int]]:
    """Flattened model inputs of the rows and which of them had complete history."""
    ends = np.fromiter((row.row for row in rows), dtype=np.intp, count=len(rows))
    firsts = np.fromiter((row.first for row in rows), dtype=np.intp, count=len(rows))
    starts = ends - (lookback - 1)
    enough = np.flatnonzero(starts >= firsts)
    bars = starts[enough, None] + np.arange(lookback)
    windows = features[bars[..., None], columns].reshape(len(enough), lookback * len(columns))
    finite = np.isfinite(windows).all(axis=1)
    return windows[finite], enough[finite].tolist()


@dataclass(slots=True)
class _GroupRows:
    """A group's alert rows in the batch's features, and the model inputs made of them (shared
    by the group's models with the same lookback and features)."""

    features: FloatArray
    rows: Sequence[_Row]
    made: dict[tuple[int, tuple[str, ...]], tuple[FloatArray, list[int]]] = field(
        default_factory=dict
    )

    def inputs(self, spec: ModelSpec, columns: NDArray[np.intp]) -> tuple[FloatArray, list[int]]:
        key = (spec.lookback, spec.feature_names)
        if key not in self.made:
            self.made[key] = _inputs(self.features, self.rows, columns, spec.lookback)
        return self.made[key]


def _run_model(
    spec: ModelSpec,
    group: _GroupRows,
    *,
    items: Sequence[Item],
    predict: PredictWindows,
    result: GroupResult,
) -> None:
    rows = group.rows
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
        inputs, usable = group.inputs(spec, columns)
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


def infer_batch(
    groups: Mapping[WindowKey, GroupInput], predict: PredictWindows, size: int
) -> dict[WindowKey, GroupResult]:
    """Apply each group's bars to its history and predict every alert, point-in-time.

    A group's `history` holds at least the `size` stored bars up to each of its alerts' bars (or
    all there are). The features of every group come from one numpy pass, then each model gets
    one `predict` call with all its alerts of the batch.
    """
    results: dict[WindowKey, GroupResult] = {}
    with stage("features"):  # the bars applied to the windows, then the features
        slices = _Slices()
        for key, group in groups.items():
            alerts = [item.alert for item in group.items]
            kinds = classify(group.history, alerts)
            bars = _apply(key, group.history, alerts, size, slices) if group.specs else None
            window = (group.history if bars is None else bars).tail(size)
            results[key] = GroupResult(window=window, kinds=kinds)
        features, rows = slices.features()
    for key, group in groups.items():
        found = _GroupRows(features, rows.get(key, []))
        for spec in group.specs:
            _run_model(spec, found, items=group.items, predict=predict, result=results[key])
    return results
