"""`itff train` and `itff evaluate`: symbols x targets x model types, walk-forward, in parallel."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from bot.contracts import BadInput

if TYPE_CHECKING:
    import pandas as pd
    from rich.progress import Progress

    from bot.artifacts import ArtifactRegistry
    from bot.contracts import Settings
    from bot.core import EvaluationReport, WalkForwardConfig
    from bot.pipeline import ChampionSwitch, TrainOutcome, TrainTask

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


def _split(values: ListOption) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


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
    from bot.core import WARMUP_BARS, make_folds

    n_samples = n_bars - WARMUP_BARS - settings.lookback + 1 - settings.horizon
    make_folds(max(n_samples, 0), horizon=settings.horizon, config=config)


def _tasks(
    settings: Settings,
    *,
    symbols: Symbols,
    targets: Targets,
    model_types: ModelTypes,
    source: str | None,
    config: WalkForwardConfig,
    final_fit: bool,
) -> list[TrainTask]:
    from bot.core import plan
    from bot.pipeline import TrainTask

    wanted = [s.upper() for s in (_split(symbols) or settings.symbols)]
    combos, skips = plan(
        wanted, _split(targets) or settings.targets, _split(model_types) or settings.model_types
    )
    for skip in skips:
        typer.echo(f"note       skipped {skip.key}: {skip.reason}", err=True)
    if not combos:
        raise BadInput("nothing to do: no model type fits the chosen targets")
    bars = _load_all(settings, source or settings.data_source, wanted)
    for frame in bars.values():
        _check_length(len(frame), settings, config)
    return [
        TrainTask(
            symbol=c.symbol,
            target=c.target,
            model_type=c.model_type,
            bars=bars[c.symbol],
            lookback=settings.lookback,
            horizon=settings.horizon,
            interval=settings.interval,
            seed=settings.seed,
            cost_bps=settings.cost_bps,
            config=config,
            final_fit=final_fit,
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


def _execute(tasks: list[TrainTask], n_jobs: int, label: str) -> Iterator[TrainOutcome]:
    from bot.pipeline import run_tasks

    with _progress() as progress:
        task = progress.add_task(label, total=len(tasks))
        for outcome in run_tasks(tasks, n_jobs):
            progress.update(task, advance=1, description=f"{label} {outcome.key}")
            yield outcome


def _config(min_train: int, refit_every: int) -> WalkForwardConfig:
    from bot.core import WalkForwardConfig

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


async def _publish_all(
    settings: Settings, outcomes: Iterator[TrainOutcome], *, promote: bool
) -> tuple[list[list[str]], list[TrainOutcome]]:
    """Publish each trained line as it completes; promote it through the champion switch when
    asked to or when its key has no champion yet (recorded, mirrored and announced)."""
    from bot.cli.pipeline import pipeline_context
    from bot.pipeline import ChampionSwitch, bucket_mirror

    rows, failed = [], []
    async with pipeline_context(settings) as ctx:
        switch = ChampionSwitch(
            ctx.session_factory, ctx.registry, ctx.events, bucket_mirror(settings, ctx.registry)
        )
        for outcome in outcomes:
            if outcome.bundle is None:
                failed.append(outcome)
                continue
            version, promoted = await _publish(switch, outcome, promote=promote)
            rows.append(_train_row(outcome, version, promoted))
    return rows, failed


async def _publish(
    switch: ChampionSwitch, outcome: TrainOutcome, *, promote: bool
) -> tuple[str, bool]:
    from bot.pipeline import record_version

    registry: ArtifactRegistry = switch.registry
    published = await asyncio.to_thread(registry.publish, outcome.bundle)  # type: ignore[arg-type]
    previous, _ = await record_version(
        session_factory=switch.session_factory, registry=registry, outcome=outcome,
        sha256=published.sha256, run_id=None,
    )  # fmt: skip
    should = promote or previous is None
    if should:
        await switch.promote(
            key=published.key, version=published.version, sha256=published.sha256,
            previous=previous, reason="itff train" + (" --promote" if promote else ": first model"),
            metrics=outcome.metrics,
        )  # fmt: skip
    return published.version, should


def _train_row(outcome: TrainOutcome, version: str, promoted: bool) -> list[str]:
    assert outcome.report is not None
    m = outcome.report.metrics
    baseline = outcome.report.baselines["buy_and_hold"]
    return [
        outcome.key, version, _accuracy(m), _fmt(m.get("sharpe"), ".2f"),
        _fmt(baseline.get("sharpe"), ".2f"), "yes" if promoted else "no",
        f"{outcome.seconds:.1f}s",
    ]  # fmt: skip


def _failures(failed: list[TrainOutcome]) -> None:
    for outcome in failed:
        typer.secho(f"failed     {outcome.key}: {outcome.error}", err=True, fg="red")
    if failed:
        raise typer.Exit(1)


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
    from bot.contracts import load_settings

    settings = load_settings()
    config = _config(min_train, refit_every)
    work = _tasks(settings, symbols=symbols, targets=targets, model_types=model_types,
                  source=source, config=config, final_fit=True)  # fmt: skip
    outcomes = _execute(work, jobs, "training")
    rows, failed = asyncio.run(_publish_all(settings, outcomes, promote=promote))
    columns = ("model", "version", "accuracy [95% CI]", "Sharpe", "B&H Sharpe", "champion",
               "time")  # fmt: skip
    if rows:
        _print_table(f"trained into {settings.artifact_dir}", columns, sorted(rows))
    _failures(failed)


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
    from bot.contracts import load_settings

    settings = load_settings()
    config = _config(min_train, refit_every)
    work = _tasks(settings, symbols=symbols, targets=targets, model_types=model_types,
                  source=source, config=config, final_fit=False)  # fmt: skip
    outcomes = list(_execute(work, jobs, "evaluating"))
    reports = [o.report for o in outcomes if o.report is not None]
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in reports], indent=2))
    elif reports:
        _print_table(
            "out-of-sample walk-forward metrics (costs included), baselines on the same bars",
            EVAL_COLUMNS,
            evaluation_rows(reports),
        )
    _failures([o for o in outcomes if o.error is not None])


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("evaluate")(evaluate)
