"""One pipeline run: refresh bars -> train and evaluate in worker processes -> publish -> promote
-> model events -> push to object storage (with `ITFF_S3_BUCKET`) -> record.

Every step is written to `pipeline_runs` (status, timings, counts, per-model metrics, decisions,
anomalies) and to the day's log `ITFF_LOG_DIR/pipeline_YYYYMMDD.log` (JSON lines). A run that fails
marks itself failed and changes nothing that serves: champions switch only after a challenger is
published, verified and judged better.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import traceback
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import pandas as pd
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.artifacts import ArtifactRegistry
from bot.contracts import BadInput, ItffError, Settings, utcnow
from bot.core import Combination, PromotionRule, decide, plan
from bot.pipeline import telemetry as m
from bot.pipeline.champions import ChampionSwitch, EventSink, bucket_mirror
from bot.pipeline.lock import describe_holder, hold_pipeline_lock
from bot.pipeline.refresh import refresh_symbol
from bot.pipeline.train import TrainOutcome, TrainTask, make_pool, train_task
from bot.runtime import get_logger
from storage import model_versions as model_repo
from storage import runs as run_repo

log = get_logger(__name__)
SessionFactory = async_sessionmaker[AsyncSession]


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_id: str
    trigger: str
    status: str
    duration_s: float
    counts: dict[str, Any]
    decisions: dict[str, Any]
    metrics: dict[str, Any]
    anomalies: dict[str, Any]
    log_path: str
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == run_repo.SUCCEEDED


class RunLog:
    """JSON lines in the day's pipeline log, mirrored to the process log."""

    def __init__(self, log_dir: Path, run_id: str, started: datetime) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.path = log_dir / f"pipeline_{started:%Y%m%d}.log"
        self.run_id = run_id

    def __call__(self, event: str, **fields: Any) -> None:
        line = {"ts": utcnow().isoformat(), "run_id": self.run_id, "event": event, **fields}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, default=str) + "\n")
        log.info(event, run_id=self.run_id, **fields)


@dataclass
class _Run:
    settings: Settings
    session_factory: SessionFactory
    registry: ArtifactRegistry
    events: EventSink
    run_id: str
    write: RunLog
    rule: PromotionRule
    holdout_bars: int = 0
    counts: dict[str, Any] = field(default_factory=dict)
    decisions: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    anomalies: dict[str, Any] = field(default_factory=dict)

    def bump(self, name: str, by: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + by


def promotion_rule(settings: Settings) -> PromotionRule:
    return PromotionRule(
        min_improvement=settings.promotion_min_improvement,
        sharpe_margin=settings.promotion_sharpe_margin,
    )


def worker_count(settings: Settings, tasks: int) -> int:
    return max(1, min(settings.pipeline_workers or os.cpu_count() or 1, tasks))


async def run_pipeline(
    settings: Settings,
    *,
    session_factory: SessionFactory,
    registry: ArtifactRegistry,
    events: EventSink,
    trigger: str = "manual",
    holdout_bars: int = 0,
) -> RunSummary:
    """One full run; never raises for a failed run: the summary (and the table) say `failed`.

    Raises `PipelineBusy` (and records nothing) while another run, in any process, holds the
    pipeline lock (`bot.pipeline.lock`).

    `holdout_bars` > 0 trains on each symbol's stored bars except the newest `holdout_bars`
    (they are still refreshed into `bars`): replaying them afterwards (`itff replay --limit N`)
    is then an out-of-sample test of the new models, not a replay of their training data.
    """
    if holdout_bars < 0:
        raise BadInput(f"holdout_bars must be 0 or more, got {holdout_bars}")
    started = utcnow()
    run_id = f"{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    run = _Run(
        settings, session_factory, registry, events, run_id,
        RunLog(settings.log_dir, run_id, started), promotion_rule(settings), holdout_bars,
    )  # fmt: skip
    async with hold_pipeline_lock(
        session_factory,
        run_id=run_id,
        holder=describe_holder(trigger),
        ttl=settings.pipeline_lock_ttl_seconds,
    ):
        return await _run_locked(run, trigger, started)


async def _run_locked(run: _Run, trigger: str, started: datetime) -> RunSummary:
    """The run itself, under the pipeline lock: recorded from start to finish."""
    clock, settings, run_id = time.perf_counter(), run.settings, run.run_id
    session_factory = run.session_factory
    async with session_factory() as session:
        await run_repo.start_run(
            session=session, run_id=run_id, trigger=trigger,
            log_path=str(run.write.path), started_at=started,
        )  # fmt: skip
        await session.commit()
    run.write("pipeline_started", trigger=trigger, symbols=settings.symbols)
    status, error = run_repo.FAILED, None
    try:
        status = await _steps(run)
        if status == run_repo.FAILED:
            error = "no model could be trained; see decisions"
    except Exception as exc:
        error = _describe(exc)
        detail = {} if isinstance(exc, ItffError) else {"traceback": traceback.format_exc()}
        run.write("pipeline_failed", error=error, **detail)
    return await _finish(run, trigger, status, error, time.perf_counter() - clock)


async def _steps(run: _Run) -> str:
    """Refresh a symbol, hand its models to the pool, refresh the next one meanwhile; publish
    and judge each model as soon as it is trained."""
    settings = run.settings
    await run.events.start()
    jobs, skips = plan(settings.symbols, settings.targets, settings.model_types)
    for skip in skips:
        run.decisions[skip.key] = {"decision": "skipped", "reason": skip.reason}
        run.bump("skipped")
        m.PIPELINE_MODELS.labels("skipped").inc()
    workers = worker_count(settings, len(jobs))
    run.write("training_started", models=len(jobs), workers=workers)
    async with WorkerPool(workers) as pool:
        for symbol in settings.symbols:
            bars = _training_bars(run, symbol, await _refresh(run, symbol))
            for line in (job for job in jobs if job.symbol == symbol):
                pool.submit(_task(settings, bars, line))
        async for outcome in pool.results():
            await _handle(run, outcome)
    return run_repo.SUCCEEDED if run.counts.get("trained", 0) else run_repo.FAILED


async def _refresh(run: _Run, symbol: str) -> pd.DataFrame:
    """New bars of `symbol` into the table; returns every stored bar of it (the training set)."""
    settings = run.settings
    result = await refresh_symbol(
        session_factory=run.session_factory,
        source=settings.data_source,
        symbol=symbol,
        interval=settings.interval,
    )
    run.anomalies[symbol] = result.anomalies
    run.bump("bars_loaded", result.loaded)
    run.bump("bars_inserted", result.inserted)
    run.write("bars_refreshed", symbol=symbol, inserted=result.inserted, last=result.last_bar)
    if result.bars is None:  # refresh_symbol always sets it
        raise RuntimeError("refresh_symbol returned no bars")
    return result.bars


def _training_bars(run: _Run, symbol: str, bars: pd.DataFrame) -> pd.DataFrame:
    """The stored bars the models learn from: all, or all but the newest `holdout_bars`."""
    if not run.holdout_bars:
        return bars
    if run.holdout_bars >= len(bars):
        raise BadInput(
            f"--holdout-bars {run.holdout_bars} leaves no bar of {symbol} to train on "
            f"({len(bars)} stored); hold out fewer bars"
        )
    kept = bars.iloc[: -run.holdout_bars]
    run.write(
        "bars_held_out",
        symbol=symbol,
        held_out=min(run.holdout_bars, len(bars)),
        train_until=kept.index[-1].isoformat(),
    )
    return kept


def _task(settings: Settings, bars: pd.DataFrame, line: Combination) -> TrainTask:
    return TrainTask(
        symbol=line.symbol,
        target=line.target,
        model_type=line.model_type,
        bars=bars,
        lookback=settings.lookback,
        horizon=settings.horizon,
        interval=settings.interval,
        seed=settings.seed,
        cost_bps=settings.cost_bps,
    )


class WorkerPool:
    """Training in worker processes; results come back in completion order, the loop stays free.

    Leaving the block (also on error or cancellation) cancels what has not started and waits
    for the workers to exit, off the event loop.
    """

    def __init__(self, workers: int) -> None:
        self._pool = make_pool(workers)
        self._futures: list[asyncio.Future[TrainOutcome]] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for future in self._futures:
            future.cancel()
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)

    def submit(self, task: TrainTask) -> None:
        loop = asyncio.get_running_loop()
        self._futures.append(loop.run_in_executor(self._pool, train_task, task))

    async def results(self) -> AsyncIterator[TrainOutcome]:
        for next_done in asyncio.as_completed(self._futures):
            yield await next_done


async def _handle(run: _Run, outcome: TrainOutcome) -> None:
    if outcome.bundle is None:
        run.decisions[outcome.key] = {"decision": "failed", "error": outcome.error}
        run.bump("failed")
        m.PIPELINE_MODELS.labels("failed").inc()
        run.write("model_failed", key=outcome.key, error=outcome.error)
        return
    run.bump("trained")
    published = await asyncio.to_thread(run.registry.publish, outcome.bundle)
    run.bump("published")
    champion_version, champion_metrics = await record_version(
        session_factory=run.session_factory, registry=run.registry, outcome=outcome,
        sha256=published.sha256, run_id=run.run_id,
    )  # fmt: skip
    decision = decide(
        key=outcome.key,
        version=published.version,
        target=outcome.target,
        challenger=outcome.metrics,
        champion=champion_metrics,
        champion_version=champion_version,
        rule=run.rule,
    )
    run.metrics[outcome.key] = {
        "version": published.version, "train_seconds": round(outcome.seconds, 3),
        "train_cpu_seconds": round(outcome.cpu_seconds, 3), **outcome.metrics,
    }  # fmt: skip
    run.decisions[outcome.key] = decision.as_record()
    run.write("model_judged", key=outcome.key, **decision.as_record())
    if decision.promote:
        switch = ChampionSwitch(
            run.session_factory, run.registry, run.events, bucket_mirror(run.settings, run.registry)
        )
        await switch.promote(
            key=decision.key, version=decision.version, sha256=published.sha256,
            previous=decision.champion_version, reason=decision.reason, metrics=outcome.metrics,
        )  # fmt: skip
        run.bump("promoted")
        m.PIPELINE_MODELS.labels("promoted").inc()
    else:
        run.bump("rejected")
        m.PIPELINE_MODELS.labels("rejected").inc()


async def record_version(
    *,
    session_factory: SessionFactory,
    registry: ArtifactRegistry,
    outcome: TrainOutcome,
    sha256: str,
    run_id: str | None,
) -> tuple[str | None, dict[str, Any] | None]:
    """Store a published challenger and its equity curve; return the champion it must beat (its
    version and metrics, or None, None for the first model of its key)."""
    bundle = outcome.bundle
    assert bundle is not None  # only trained outcomes are published
    champion_version = await asyncio.to_thread(registry.champion, outcome.key)
    async with session_factory() as session:
        await model_repo.add_version(
            session=session, key=outcome.key, version=bundle.version, symbol=bundle.symbol,
            target=bundle.target, model_type=bundle.model_type, sha256=sha256,
            metrics=outcome.metrics, train_start=bundle.train_start,
            train_end=bundle.train_end, run_id=run_id,
        )  # fmt: skip
        await model_repo.replace_equity(
            session=session, key=outcome.key, version=bundle.version, rows=outcome.equity
        )
        champion = None
        if champion_version is not None:
            champion = await model_repo.get_version(
                session=session, key=outcome.key, version=champion_version
            )
        await session.commit()
    if champion_version is None:
        return None, None
    if champion is not None:
        return champion_version, dict(champion.metrics)
    meta = await asyncio.to_thread(registry.meta, outcome.key, champion_version)
    return champion_version, dict(meta.get("metrics") or {})


async def _finish(
    run: _Run, trigger: str, status: str, error: str | None, seconds: float
) -> RunSummary:
    async with run.session_factory() as session:
        row = await run_repo.finish_run(
            session=session, run_id=run.run_id, status=status, counts=run.counts,
            decisions=run.decisions, metrics=run.metrics, anomalies=run.anomalies, error=error,
        )  # fmt: skip
        await session.commit()
    m.PIPELINE_RUNS.labels(status, trigger).inc()
    m.PIPELINE_DURATION.observe(seconds)
    m.LAST_RUN_FAILED.set(0 if status == run_repo.SUCCEEDED else 1)
    if status == run_repo.SUCCEEDED and row.finished_at is not None:
        m.LAST_SUCCESS.set(row.finished_at.timestamp())
    run.write("pipeline_finished", status=status, seconds=round(seconds, 3), counts=run.counts)
    return RunSummary(
        run.run_id, trigger, status, round(seconds, 3), run.counts, run.decisions,
        run.metrics, run.anomalies, str(run.write.path), error,
    )  # fmt: skip


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ItffError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
