"""Live/backtest parity: the batch path recomputes each live signal from the stored bars.

The batch path is the one `itff evaluate` and the backtest use: `make_dataset` (features over the
whole bar history, lookback windows) -> `predict_scores` on the bundle's pipeline ->
`positions_from_scores` with the bundle's thresholds. A live signal whose prediction or action
differs from it is a mismatch: the live and the batch code paths disagree on the same bar.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from bot.contracts import BadInput
from bot.core.backtesting import positions_from_scores
from bot.core.bundle import ModelBundle
from bot.core.estimators import predict_scores
from bot.core.features import FEATURE_NAMES
from bot.core.sequences import make_dataset

SCORE_TOLERANCE = 1e-6  # absolute, on the probability or the predicted log return
ACTIONS = {1.0: "buy", -1.0: "sell", 0.0: "hold"}


@dataclass(frozen=True, slots=True)
class LiveSignal:
    """What the live path emitted for one bar (a stored signal)."""

    signal_id: str
    model_key: str
    model_version: str
    bar_time: datetime
    prediction: float
    probability: float | None
    action: str
    ood: bool


@dataclass(frozen=True, slots=True)
class ParityResult:
    """One live signal against the batch path; `problem` is None when they agree."""

    signal: LiveSignal
    batch_score: float | None
    batch_action: str | None
    problem: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "signal_id": self.signal.signal_id,
            "model_key": self.signal.model_key,
            "model_version": self.signal.model_version,
            "bar_time": self.signal.bar_time.isoformat(),
            "live_score": _live_score(self.signal),
            "batch_score": self.batch_score,
            "live_action": self.signal.action,
            "batch_action": self.batch_action,
            "problem": self.problem,
        }


def _live_score(signal: LiveSignal) -> float:
    """The score the thresholds act on, as the live path stored it."""
    return signal.probability if signal.probability is not None else signal.prediction


def batch_scores(bars: pd.DataFrame, bundle: ModelBundle) -> pd.Series:
    """The batch path's score at every bar where a window ends (index: bar time)."""
    if tuple(bundle.feature_names) != tuple(FEATURE_NAMES):
        raise ValueError(
            f"{bundle.key}/{bundle.version} was trained on features {list(bundle.feature_names)}, "
            "not the ones bot.core.features builds now"
        )
    dataset = make_dataset(
        bars, lookback=bundle.lookback, horizon=bundle.horizon, target=bundle.target
    )
    return pd.Series(predict_scores(bundle.pipeline, dataset.X, bundle.target), dataset.times)


def check_parity(
    bars: pd.DataFrame, bundle: ModelBundle, signals: Sequence[LiveSignal]
) -> list[ParityResult]:
    """Each live signal of `bundle`'s version against the batch path over `bars`."""
    try:
        scores = batch_scores(bars, bundle)
    except (ValueError, BadInput) as exc:
        return [ParityResult(s, None, None, f"the batch path failed: {exc}") for s in signals]
    return [_compare(signal, scores, bundle) for signal in signals]


def _compare(signal: LiveSignal, scores: pd.Series, bundle: ModelBundle) -> ParityResult:
    when = pd.Timestamp(signal.bar_time)
    if when not in scores.index:
        return ParityResult(signal, None, None, "the stored bars do not reach this bar")
    score = float(scores.loc[when])
    position = float(positions_from_scores(np.array([score]), bundle.thresholds)[0])
    action = ACTIONS[position]
    live = _live_score(signal)
    if not math.isclose(live, score, rel_tol=0.0, abs_tol=SCORE_TOLERANCE):
        problem = f"score {live:.8g} live, {score:.8g} batch"
    elif not signal.ood and signal.action != action:  # an ood signal is held whatever the score
        problem = f"action {signal.action} live, {action} batch"
    else:
        problem = None
    return ParityResult(signal, score, action, problem)
