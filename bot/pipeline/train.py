"""The one training executor: model lines trained (or only evaluated) in worker processes.

`train_task` trains and evaluates one model line (`bot.core.planning`) in a worker and returns a
picklable `TrainOutcome`; `make_pool` is the pool of fork-server workers the pipeline submits to
from its event loop, and `run_tasks` the same pool for synchronous callers (`itff train`,
`itff evaluate`, the benchmarks). Nothing here touches the database, Kafka or the artifact
registry: the parent process does that.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from bot.contracts import ItffError, model_key
from bot.core import (
    COST_ORDER,
    RECENT_PREFIX,
    EvaluationReport,
    ModelBundle,
    WalkForwardConfig,
)


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
    config: WalkForwardConfig | None = None  # None: the default walk-forward
    final_fit: bool = True  # False: evaluate only (`itff evaluate`), no bundle

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
    report: EvaluationReport | None = None
    error: str | None = None


def make_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes from a fork server (no inherited threads or sockets), one thread each."""
    context = multiprocessing.get_context("forkserver")
    # The fork server imports the training stack once; each worker forks with it loaded.
    context.set_forkserver_preload(["bot.pipeline.train", "bot.core.training"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker)


def _init_worker() -> None:
    from threadpoolctl import threadpool_limits

    # Parallelism comes from the processes; BLAS/OpenMP threads would only oversubscribe cores.
    threadpool_limits(limits=1)


def run_tasks(tasks: Sequence[TrainTask], workers: int) -> Iterator[TrainOutcome]:
    """`train_task` over `tasks` in `make_pool(workers)`, outcomes in completion order; in this
    process when one worker or one task is enough."""
    if workers <= 1 or len(tasks) <= 1:
        _init_worker()
        yield from map(train_task, tasks)
        return
    with make_pool(min(workers, len(tasks))) as pool:
        futures = [pool.submit(train_task, task) for task in order_tasks(tasks)]
        for future in as_completed(futures):
            yield future.result()


def train_task(task: TrainTask) -> TrainOutcome:
    """Train and evaluate one model line; an error becomes part of the outcome, not a crash."""
    from bot.core import TrainResult, evaluate_model, train_model

    started = (time.perf_counter(), time.process_time())
    fit = train_model if task.final_fit else evaluate_model
    try:
        value = fit(
            task.bars, symbol=task.symbol, target=task.target, model_type=task.model_type,
            lookback=task.lookback, horizon=task.horizon, interval=task.interval,
            seed=task.seed, cost_bps=task.cost_bps, config=task.config,
        )  # fmt: skip
    except ItffError as exc:
        return _outcome(task, started, error=str(exc))
    if not isinstance(value, TrainResult):
        assert isinstance(value, EvaluationReport)
        return _outcome(task, started, metrics=dict(value.metrics), report=value)
    return _outcome(
        task,
        started,
        bundle=value.bundle,
        metrics=version_metrics(value.bundle.metrics, recent_window_metrics(value.report)),
        equity=equity_rows(value.report.equity),
        report=value.report,
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
    """The equity curve as plain rows for `storage.model_versions.replace_equity`."""
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
    return sorted(tasks, key=lambda task: COST_ORDER.get(task.model_type, 9))
