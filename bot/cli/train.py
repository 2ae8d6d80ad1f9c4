"""`itff train` and `itff evaluate`: symbols x targets x model types, walk-forward, in parallel."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.errors import BadInput, ItffError

if TYPE_CHECKING:
    import pandas as pd
    from rich.progress import Progress

    from bot.artifacts import ArtifactRegistry
    from bot.evaluation import Combination, EvaluationReport
    from bot.settings import Settings
    from bot.training import TrainResult
    from bot.walkforward import WalkForwardConfig

ListOption = list[str] | None
Symbols = Annotated[ListOption, typer.Option("--symbols", help="e.g. SPX,NDX (ITFF_SYMBOLS)")]
Targets = Annotated[ListOption, typer.Option("--targets", help="direction,return (ITFF_TARGETS)")]
ModelTypes = Annotated[
    ListOption, typer.Option("--model-types", help="logreg,ridge,rf,hgb (ITFF_MODEL_TYPES)")
]
Source = Annotated[
    str | None, typer.Option("--source", help="csv:PATH or binance:URL (ITFF_DATA_SOURCE)")
]
Jobs = Annotated[int, typer.Option("--jobs", min=1, help="worker processes (default: CPU count)")]
MinTrain = Annotated[int, typer.Option("--min-train", min=200, help="samples before 1st test")]
CPUS = os.cpu_count() or 1
RefitEvery = Annotated[int, typer.Option("--refit-every", min=1, help="refit every k bars")]


@dataclass(frozen=True, slots=True)
class Job:
    """One combination with its bars and every parameter: picklable for a worker process."""

    combination: Combination
    bars: pd.DataFrame
    lookback: int
    horizon: int
    interval: str
    seed: int
    cost_bps: float
    config: WalkForwardConfig


@dataclass(frozen=True, slots=True)
class Outcome:
    key: str
    seconds: float
    cpu_seconds: float = 0.0
    value: Any = None  # TrainResult or EvaluationReport
    error: str | None = None


def _split(values: ListOption) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _run(job: Job, train: bool) -> Outcome:
    from threadpoolctl import threadpool_limits

    from bot.evaluation import evaluate_model
    from bot.training import train_model

    started, cpu = time.perf_counter(), time.process_time()
    fn = train_model if train else evaluate_model
    c = job.combination
    try:
        # Parallelism comes from the worker processes: BLAS/OpenMP threads would oversubscribe.
        with threadpool_limits(limits=1):
            value = fn(
                job.bars, symbol=c.symbol, target=c.target, model_type=c.model_type,
                lookback=job.lookback, horizon=job.horizon, interval=job.interval,
                seed=job.seed, cost_bps=job.cost_bps, config=job.config,
            )  # fmt: skip
    except ItffError as exc:
        return Outcome(c.key, time.perf_counter() - started, error=str(exc))
    return Outcome(c.key, time.perf_counter() - started, time.process_time() - cpu, value=value)


def train_job(job: Job) -> Outcome:
    return _run(job, train=True)


def evaluate_job(job: Job) -> Outcome:
    return _run(job, train=False)


def _load_all(settings: Settings, source: str, symbols: list[str]) -> dict[str, pd.DataFrame]:
    from bot.data import load_bars_report

    bars = {}
    for symbol in symbols:
        loaded = load_bars_report(source, symbol, interval=settings.interval)
        if not loaded.report.clean:
            typer.echo(f"data       {loaded.report.summary()}", err=True)
        bars[symbol.upper()] = loaded.bars
    return bars


def _check_length(n_bars: int, settings: Settings, config: WalkForwardConfig) -> None:
    """Refuse too short a history here, in one line, before any worker starts."""
    from bot.features import WARMUP_BARS
    from bot.walkforward import make_folds

    n_samples = n_bars - WARMUP_BARS - settings.lookback + 1 - settings.horizon
    make_folds(max(n_samples, 0), horizon=settings.horizon, config=config)


def _jobs(
    settings: Settings,
    *,
    symbols: Symbols,
    targets: Targets,
    model_types: ModelTypes,
    source: str | None,
    config: WalkForwardConfig,
) -> list[Job]:
    from bot.evaluation import combinations

    wanted = [s.upper() for s in (_split(symbols) or settings.symbols)]
    combos, notes = combinations(
        wanted, _split(targets) or settings.targets, _split(model_types) or settings.model_types
    )
    for note in notes:
        typer.echo(f"note       {note}", err=True)
    if not combos:
        raise BadInput("nothing to do: no model type fits the chosen targets")
    bars = _load_all(settings, source or settings.data_source, wanted)
    for frame in bars.values():
        _check_length(len(frame), settings, config)
    return [
        Job(
            combination=c,
            bars=bars[c.symbol],
            lookback=settings.lookback,
            horizon=settings.horizon,
            interval=settings.interval,
            seed=settings.seed,
            cost_bps=settings.cost_bps,
            config=config,
        )
        for c in combos
    ]


def _progress() -> Progress:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    )  # fmt: skip


def _execute(
    jobs: list[Job], fn: Callable[[Job], Outcome], n_jobs: int, label: str
) -> Iterator[Outcome]:
    from bot.evaluation import run_parallel

    with _progress() as progress:
        task = progress.add_task(label, total=len(jobs))
        for outcome in run_parallel(fn, jobs, n_jobs=min(n_jobs, len(jobs))):
            progress.update(task, advance=1, description=f"{label} {outcome.key}")
            yield outcome


def _config(min_train: int, refit_every: int) -> WalkForwardConfig:
    from bot.walkforward import WalkForwardConfig

    return WalkForwardConfig(min_train=min_train, refit_every=refit_every)


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _accuracy(metrics: dict[str, float | None]) -> str:
    low, high = metrics.get("accuracy_ci_low"), metrics.get("accuracy_ci_high")
    return f"{_fmt(metrics.get('accuracy'))} [{_fmt(low, '.3f')}, {_fmt(high, '.3f')}]"


EVAL_COLUMNS = (
    "model", "accuracy [95% CI]", "AUC", "RMSE", "Sharpe", "Sortino", "CAGR", "MaxDD", "PF",
    "win", "exposure", "trades",
)  # fmt: skip


def _row(name: str, m: dict[str, float | None]) -> list[str]:
    return [
        name, _accuracy(m), _fmt(m.get("roc_auc")), _fmt(m.get("rmse"), ".5f"),
        _fmt(m.get("sharpe"), ".2f"), _fmt(m.get("sortino"), ".2f"), _fmt(m.get("cagr"), ".1%"),
        _fmt(m.get("max_drawdown"), ".1%"), _fmt(m.get("profit_factor"), ".2f"),
        _fmt(m.get("win_rate"), ".1%"), _fmt(m.get("exposure"), ".0%"),
        _fmt(m.get("n_trades"), ".0f"),
    ]  # fmt: skip


def _print_table(title: str, columns: tuple[str, ...], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console(width=170).print(table)


def evaluation_rows(reports: list[EvaluationReport]) -> list[list[str]]:
    """Per symbol and target: each model, then the baselines measured on the same test bars."""
    rows: list[list[str]] = []
    groups = sorted({(r.symbol, r.target) for r in reports})
    for symbol, target in groups:
        group = sorted((r for r in reports if (r.symbol, r.target) == (symbol, target)),
                       key=lambda r: r.model_type)  # fmt: skip
        rows.extend(_row(r.key, r.metrics) for r in group)
        rows.extend(
            _row(f"  baseline {name}", values) for name, values in group[0].baselines.items()
        )
    return rows


def _publish(registry: ArtifactRegistry, result: TrainResult, *, promote: bool) -> tuple[str, bool]:
    published = registry.publish(result.bundle)
    should = promote or registry.champion(published.key) is None
    if should:
        registry.promote(published.key, published.version)
    return published.version, should


def _train_row(outcome: Outcome, version: str, promoted: bool) -> list[str]:
    m = outcome.value.report.metrics
    baseline = outcome.value.report.baselines["buy_and_hold"]
    return [
        outcome.key, version, _accuracy(m), _fmt(m.get("sharpe"), ".2f"),
        _fmt(baseline.get("sharpe"), ".2f"), "yes" if promoted else "no",
        f"{outcome.seconds:.1f}s",
    ]  # fmt: skip


def _failures(failed: list[Outcome]) -> None:
    for outcome in failed:
        typer.secho(f"failed     {outcome.key}: {outcome.error}", err=True, fg="red")
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        *,
        symbols: Symbols = None,
        targets: Targets = None,
        model_types: ModelTypes = None,
        source: Source = None,
        promote: Annotated[
            bool, typer.Option(help="make each new version the champion (default: only if none)")
        ] = False,
        jobs: Jobs = CPUS,
        min_train: MinTrain = 1000,
        refit_every: RefitEvery = 250,
    ) -> None:
        """Train, evaluate walk-forward, publish to ITFF_ARTIFACT_DIR and promote new lines."""
        from bot.artifacts import registry_from_settings
        from bot.settings import load_settings

        settings = load_settings()
        registry = registry_from_settings(settings)
        work = _jobs(settings, symbols=symbols, targets=targets, model_types=model_types,
                     source=source, config=_config(min_train, refit_every))  # fmt: skip
        rows, failed = [], []
        for outcome in _execute(work, train_job, jobs, "training"):
            if outcome.error is not None:
                failed.append(outcome)
                continue
            version, promoted = _publish(registry, outcome.value, promote=promote)
            rows.append(_train_row(outcome, version, promoted))
        columns = ("model", "version", "accuracy [95% CI]", "Sharpe", "B&H Sharpe", "champion",
                   "time")  # fmt: skip
        if rows:
            _print_table(f"trained into {settings.artifact_dir}", columns, sorted(rows))
        _failures(failed)

    @app.command("evaluate")
    def evaluate(
        *,
        symbols: Symbols = None,
        targets: Targets = None,
        model_types: ModelTypes = None,
        source: Source = None,
        as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
        jobs: Jobs = CPUS,
        min_train: MinTrain = 1000,
        refit_every: RefitEvery = 250,
    ) -> None:
        """Walk-forward out-of-sample metrics of every model beside the baselines."""
        from bot.settings import load_settings

        settings = load_settings()
        work = _jobs(settings, symbols=symbols, targets=targets, model_types=model_types,
                     source=source, config=_config(min_train, refit_every))  # fmt: skip
        outcomes = list(_execute(work, evaluate_job, jobs, "evaluating"))
        reports = [o.value for o in outcomes if o.error is None]
        if as_json:
            typer.echo(json.dumps([r.to_dict() for r in reports], indent=2))
        elif reports:
            _print_table(
                "out-of-sample walk-forward metrics (costs included), baselines on the same bars",
                EVAL_COLUMNS,
                evaluation_rows(reports),
            )
        _failures([o for o in outcomes if o.error is not None])
