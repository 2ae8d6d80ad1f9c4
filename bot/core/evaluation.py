"""Honest out-of-sample evaluation: walk-forward scores -> metrics, backtest and baselines.

Every number here comes from test blocks of the walk-forward (`bot.core.walkforward`): the model and
the thresholds that produced a position never saw that bar or anything after it. The baselines are
measured on exactly the same bars: buy and hold, persistence (the sign of the bar's own return),
and a seeded random +/-1 signal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from bot.contracts import model_key
from bot.core.backtesting import backtest
from bot.core.bundle import Thresholds
from bot.core.estimators import check_model_type
from bot.core.intervals import periods_per_year
from bot.core.planning import Combination
from bot.core.scores import classification_metrics, directional_accuracy, regression_metrics
from bot.core.sequences import Dataset, make_dataset
from bot.core.targets import check_target
from bot.core.walkforward import WalkForwardConfig, WalkForwardResult, run_walk_forward

FloatArray = NDArray[np.floating[Any]]
Metrics = dict[str, float | None]
T = TypeVar("T")
R = TypeVar("R")
BASELINES = ("buy_and_hold", "persistence", "random")


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """Out-of-sample results of one `symbol-target-model_type` on one bar history."""

    symbol: str
    target: str
    model_type: str
    interval: str
    lookback: int
    horizon: int
    metrics: Metrics
    baselines: dict[str, Metrics]
    equity: pd.DataFrame  # time, position, strategy_return, equity (test bars only)
    thresholds: tuple[Thresholds, ...] = field(default=())
    fold_metrics: tuple[Metrics, ...] = field(default=())  # one per test block, in time order
    n_folds: int = 0

    @property
    def key(self) -> str:
        return model_key(self.symbol, self.target, self.model_type)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: metrics, baselines, the test window and the final equity."""
        times = self.equity["time"]
        return {
            "key": self.key,
            "symbol": self.symbol,
            "target": self.target,
            "model_type": self.model_type,
            "interval": self.interval,
            "lookback": self.lookback,
            "horizon": self.horizon,
            "test_start": times.iloc[0].isoformat() if len(times) else None,
            "test_end": times.iloc[-1].isoformat() if len(times) else None,
            "n_folds": self.n_folds,
            "metrics": self.metrics,
            "baselines": self.baselines,
        }


def prediction_metrics(target: str, y: FloatArray, scores: FloatArray) -> Metrics:
    """Classifier metrics for `direction` (score = P(up)), regression metrics for `return`."""
    if target == "direction":
        return classification_metrics(y > 0, scores >= 0.5, scores)  # noqa: PLR2004
    return regression_metrics(y, scores)


def _baseline_positions(ds: Dataset, index: NDArray[np.intp], seed: int) -> dict[str, FloatArray]:
    rng = np.random.default_rng(seed)
    return {
        "buy_and_hold": np.ones(index.size),
        "persistence": np.where(ds.last_returns[index] > 0, 1.0, -1.0),
        "random": rng.choice(np.array([-1.0, 1.0]), size=index.size),
    }


def baseline_metrics(
    ds: Dataset, index: NDArray[np.intp], *, seed: int, cost_bps: float, interval: str, short: bool
) -> dict[str, Metrics]:
    """The three baselines on the test bars `index`: directional accuracy and backtest."""
    actual_up = ds.y[index] > 0  # direction labels are 1/0, return labels signed
    out = {}
    for name, positions in _baseline_positions(ds, index, seed).items():
        held = positions if short else np.maximum(positions, 0.0)
        result = backtest(
            held,
            ds.next_returns[index],
            cost_bps=cost_bps,
            periods_per_year=periods_per_year(interval),
        )
        out[name] = directional_accuracy(actual_up, positions > 0) | result.metrics
    return out


def evaluate_dataset(
    ds: Dataset,
    *,
    combination: Combination,
    lookback: int,
    horizon: int,
    interval: str,
    seed: int,
    cost_bps: float,
    config: WalkForwardConfig,
) -> tuple[EvaluationReport, WalkForwardResult]:
    """Walk-forward over the labelled samples of `ds`, then metrics, backtest and baselines."""
    n = ds.n_labelled
    run = run_walk_forward(
        ds.X[:n], ds.y[:n], ds.next_returns[:n],
        target=combination.target, model_type=combination.model_type, horizon=horizon,
        seed=seed, cost_bps=cost_bps, config=config,
    )  # fmt: skip
    index = run.test_index
    result = backtest(
        run.positions,
        ds.next_returns[index],
        cost_bps=cost_bps,
        periods_per_year=periods_per_year(interval),
    )
    report = EvaluationReport(
        symbol=combination.symbol, target=combination.target, model_type=combination.model_type,
        interval=interval, lookback=lookback, horizon=horizon,
        metrics=prediction_metrics(combination.target, ds.y[index], run.scores) | result.metrics,
        baselines=baseline_metrics(
            ds, index, seed=seed, cost_bps=cost_bps, interval=interval, short=config.allow_short
        ),
        equity=result.equity_frame(ds.times[index]),
        thresholds=run.thresholds, n_folds=len(run.folds),
        fold_metrics=_per_fold(ds, run, target=combination.target, cost_bps=cost_bps,
                               interval=interval),
    )  # fmt: skip
    return report, run


def _per_fold(
    ds: Dataset, run: WalkForwardResult, *, target: str, cost_bps: float, interval: str
) -> tuple[Metrics, ...]:
    """Metrics of each test block alone (the last one is the most recent model's record)."""
    out, offset = [], 0
    for fold in run.folds:
        part = slice(offset, offset + len(fold.test))
        offset += len(fold.test)
        index = run.test_index[part]
        result = backtest(
            run.positions[part],
            ds.next_returns[index],
            cost_bps=cost_bps,
            periods_per_year=periods_per_year(interval),
        )
        out.append(prediction_metrics(target, ds.y[index], run.scores[part]) | result.metrics)
    return tuple(out)


def evaluate_model(
    bars: pd.DataFrame,
    *,
    symbol: str,
    target: str,
    model_type: str,
    lookback: int = 1,
    horizon: int = 1,
    interval: str = "1D",
    seed: int = 42,
    cost_bps: float = 1.0,
    config: WalkForwardConfig | None = None,
) -> EvaluationReport:
    """Walk-forward evaluation of one model type on `bars` (no final fit; see `train_model`)."""
    check_model_type(model_type, check_target(target))
    ds = make_dataset(bars, lookback=lookback, horizon=horizon, target=target)
    report, _ = evaluate_dataset(
        ds, combination=Combination(symbol.upper(), target, model_type), lookback=lookback,
        horizon=horizon, interval=interval, seed=seed, cost_bps=cost_bps,
        config=config or WalkForwardConfig(),
    )  # fmt: skip
    return report
