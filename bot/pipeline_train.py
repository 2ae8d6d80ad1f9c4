"""The training half of a pipeline run, executed in worker processes.

`plan` lists every symbol x target x model type (invalid pairs become recorded skips); `train_task`
trains and evaluates one of them in a worker and returns a picklable `TrainOutcome`. Nothing here
touches the database, Kafka or the artifact registry: the parent process does that.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from bot.bundle import ModelBundle
from bot.errors import ItffError
from bot.evaluation import EvaluationReport
from bot.promotion import RECENT_PREFIX
from bot.schemas import model_key

# Slow model types first, so the pool is not left waiting on one long task at the end.
_COST_ORDER = {"hgb": 0, "rf": 1, "forest": 1}


@dataclass(frozen=True, slots=True)
class TrainTask:
    symbol: str
    target: str
    model_type: str
    bars: pd.DataFrame
    lookback: int
    horizon: int
    interval: str
    seed: int
    cost_bps: float

    @property
    def key(self) -> str:
        return model_key(self.symbol, self.target, self.model_type)


@dataclass(frozen=True, slots=True)
class TrainOutcome:
    key: str
    symbol: str
    target: str
    model_type: str
    seconds: float
    cpu_seconds: float
    bundle: ModelBundle | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    equity: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Skip:
    key: str
    reason: str


def plan(
    symbols: Sequence[str], targets: Sequence[str], model_types: Sequence[str]
) -> tuple[list[tuple[str, str, str]], list[Skip]]:
    """Every (symbol, target, model type) to train, and the pairs that cannot exist, with why."""
    from bot.models import supported_model_types, supports

    jobs: list[tuple[str, str, str]] = []
    skips: list[Skip] = []
    for symbol in symbols:
        for target in targets:
            for model_type in model_types:
                if supports(model_type, target):
                    jobs.append((symbol, target, model_type))
                else:
                    usable = ", ".join(supported_model_types(target))
                    reason = f"{model_type} cannot predict {target} (use {usable})"
                    skips.append(Skip(model_key(symbol, target, model_type), reason))
    jobs.sort(key=lambda job: _COST_ORDER.get(job[2], 9))
    return jobs, skips


def make_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes from a fork server (no inherited threads or sockets), one thread each."""
    context = multiprocessing.get_context("forkserver")
    # The fork server imports the training stack once; each worker forks with it loaded.
    context.set_forkserver_preload(["bot.pipeline_train", "bot.training"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker)


def _init_worker() -> None:
    from threadpoolctl import threadpool_limits

    # Parallelism comes from the processes; BLAS/OpenMP threads would only oversubscribe cores.
    threadpool_limits(limits=1)


def train_task(task: TrainTask) -> TrainOutcome:
    """Train and evaluate one model line; an error becomes part of the outcome, not a crash."""
    from bot.training import train_model

    started = (time.perf_counter(), time.process_time())
    try:
        result = train_model(
            task.bars,
            symbol=task.symbol,
            target=task.target,
            model_type=task.model_type,
            lookback=task.lookback,
            horizon=task.horizon,
            interval=task.interval,
            seed=task.seed,
            cost_bps=task.cost_bps,
        )
    except ItffError as exc:
        return _outcome(task, started, error=str(exc))
    return _outcome(
        task,
        started,
        bundle=result.bundle,
        metrics=version_metrics(result.bundle.metrics, recent_window_metrics(result.report)),
        equity=equity_rows(result.report.equity),
    )


def _outcome(task: TrainTask, started: tuple[float, float], **result: Any) -> TrainOutcome:
    return TrainOutcome(
        key=task.key,
        symbol=task.symbol,
        target=task.target,
        model_type=task.model_type,
        seconds=time.perf_counter() - started[0],
        cpu_seconds=time.process_time() - started[1],
        **result,
    )


def version_metrics(
    overall: dict[str, float | None], recent: dict[str, float | None]
) -> dict[str, float | None]:
    """Overall out-of-sample metrics plus the most recent window's, prefixed `recent_`."""
    return {**overall, **{f"{RECENT_PREFIX}{name}": value for name, value in recent.items()}}


def recent_window_metrics(report: EvaluationReport) -> dict[str, float | None]:
    """Out-of-sample metrics of the last walk-forward test block (the most recent window)."""
    if not report.fold_metrics:
        return {}
    return {name: _number(value) for name, value in report.fold_metrics[-1].items()}


def equity_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The equity curve as plain rows for `storage.models.replace_equity`."""
    if frame.empty:
        return []
    times = pd.DatetimeIndex(frame["time"])
    times = times.tz_localize("UTC") if times.tz is None else times.tz_convert("UTC")
    return [
        {
            "time": _pydatetime(stamp),
            "position": float(position),
            "strategy_return": float(ret),
            "equity": float(equity),
        }
        for stamp, position, ret, equity in zip(
            times,
            frame["position"].to_numpy(),
            frame["strategy_return"].to_numpy(),
            frame["equity"].to_numpy(),
            strict=True,
        )
    ]


def _pydatetime(stamp: pd.Timestamp) -> datetime:
    return stamp.to_pydatetime()


def _number(value: float | None) -> float | None:
    return None if value is None else float(value)


def order_tasks(tasks: Iterable[TrainTask]) -> list[TrainTask]:
    return sorted(tasks, key=lambda task: _COST_ORDER.get(task.model_type, 9))
