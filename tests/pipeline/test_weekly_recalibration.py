"""The weekly report's recalibrated thresholds: proposed for a champion whose live precision
drifts, computed on its live window's resolved signals only, and `--apply` publishing them as a
new version of the line promoted through the champion switch (real registry, SQLite, Kafka)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.artifacts.format import MODEL_FILE
from bot.contracts import ModelEvent, Settings, Signal
from bot.core import neutral_score, resolve_all, weekly_paths
from bot.kafka import ModelEventPublisher
from bot.pipeline import ChampionSwitch, WeeklyReport, apply_proposals, weekly_report
from storage import model_versions as model_repo
from storage.signals import OutcomeRecord, insert_outcomes, insert_signals
from tests.support.cli import run_itff
from tests.support.consumer import (
    SEED_BARS,
    daily_bars,
    publish_champions,
    read_topic,
    registry,
    seed_bars,
)
from tests.support.env import child_env

LIVE_BARS = 45
DRIFTING = "SPX-direction-logreg"  # its stored backtest precision is far above the live one
STEADY = "SPX-direction-ridge"  # no stored precision or recall: nothing to recalibrate
STORED = {DRIFTING: {"precision": 0.95, "recall": 0.95}, STEADY: {"accuracy": 0.5}}


async def _live_period(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> tuple[str, dict[str, str]]:
    """Champions recorded as the pipeline does, the live bars stored, and one resolved signal per
    live bar and champion (scores spread around the centre, outcomes from the bars); the week."""
    bars = daily_bars()
    lines = (("direction", "logreg"), ("direction", "ridge"))
    champions = publish_champions(settings, "SPX", lines=lines, train=bars.iloc[:SEED_BARS])
    live = bars.iloc[SEED_BARS : SEED_BARS + LIVE_BARS + 1]
    await seed_bars(session_factory, "SPX", live)
    times = [t.to_pydatetime() for t in live.index[:-1]]
    rng = np.random.default_rng(17)
    async with session_factory() as session, session.begin():
        for key, version in champions.items():
            symbol, target, model_type = key.split("-")
            await model_repo.add_version(
                session=session, key=key, version=version, symbol=symbol, target=target,
                model_type=model_type, sha256="0" * 64, metrics=STORED[key], train_start=None,
                train_end=None, run_id=None,
            )  # fmt: skip
            await model_repo.set_champion(session=session, key=key, version=version)
            scores = rng.uniform(0.3, 0.7, len(times))
            await _signals(session, key, version, times=times, scores=scores, bars=live)
    week = "{}-W{:02d}".format(*times[-1].isocalendar()[:2])
    return week, champions


async def _signals(
    session: AsyncSession,
    key: str,
    version: str,
    *,
    times: list[datetime],
    scores: npt.NDArray[np.float64],
    bars: pd.DataFrame,
) -> None:
    centre = neutral_score("direction")
    actions = ["buy" if s >= centre else "sell" for s in scores]
    signals = [
        Signal(
            alert_id=f"{key}-{t:%Y%m%d}",
            symbol="SPX",
            interval="1D",
            bar_time=t,
            model_key=key,
            model_version=version,
            target="direction",
            prediction=float(s),
            probability=float(s),
            action=a,
            ood=False,
            latency_ms=5.0,
        )
        for t, s, a in zip(times, scores, actions, strict=True)
    ]
    resolutions = resolve_all(
        bars, bar_times=times, horizons=[1] * len(times), targets=["direction"] * len(times),
        predictions=list(scores), actions=actions,
    )  # fmt: skip
    outcomes = [
        OutcomeRecord(
            signal_id=s.signal_id,
            model_key=key,
            bar_time=s.bar_time,
            exit_time=r.exit_time,
            realised_return=r.realised_return,
            hit=r.hit,
            strategy_return=r.strategy_return,
        )
        for s, r in zip(signals, resolutions, strict=True)
        if r is not None
    ]
    await insert_signals(session=session, signals=signals, horizons={})
    await insert_outcomes(session=session, outcomes=outcomes)


async def _report(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> tuple[WeeklyReport, dict[str, str]]:
    week, champions = await _live_period(settings, session_factory)
    report = await weekly_report(
        settings, session_factory=session_factory, week=week, registry=registry(settings)
    )
    return report, champions


async def test_precision_drift_gets_thresholds_chosen_on_the_live_signals(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    report, champions = await _report(settings, session_factory)

    verdicts = {(r["model_key"], r["window"]): r["verdict"] for r in report.rows}
    assert "precision" in verdicts[(DRIFTING, "30d")]  # live vs the batch path (random scores)
    stored = {r["model_key"]: r["stored_drift"] for r in report.rows if r["window"] == "30d"}
    assert any(item.startswith("precision") for item in stored[DRIFTING])
    assert [p.model_key for p in report.proposals] == [DRIFTING]  # the steady line has none
    proposal = report.proposals[0]
    assert proposal.version == champions[DRIFTING]
    assert (proposal.current.sell, proposal.current.buy) == (0.5, 0.5)
    assert proposal.signals >= 20  # the 30-day window's resolved signals with their next bar
    assert proposal.proposed != proposal.current
    # training's rule picks the best Sharpe among candidates that include the current pair
    effect = proposal.effect
    assert effect["proposed"]["sharpe"] >= effect["current"]["sharpe"]  # type: ignore[operator]
    assert effect["current"]["buys"] + effect["current"]["sells"] == proposal.signals
    markdown, document = weekly_paths(settings.report_dir, report.week)
    text = markdown.read_text()
    assert "## Recalibrated thresholds (precision or recall drift)" in text
    assert f"| {DRIFTING} proposed | {proposal.signals} |" in text
    assert f"itff report weekly --week {report.week} --apply" in text
    stored = json.loads(document.read_text())["proposals"]
    assert stored == [json.loads(json.dumps(proposal.as_record()))]


@pytest.mark.kafka
async def test_apply_publishes_a_new_version_and_promotes_it(
    kafka_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    settings = kafka_settings
    report, champions = await _report(settings, session_factory)
    proposal = report.proposals[0]
    store = registry(settings)

    async with ModelEventPublisher(settings) as events:
        switch = ChampionSwitch(session_factory, store, events)
        [version] = await apply_proposals(report, switch=switch)

    source = champions[DRIFTING]
    assert version != source
    assert store.champion(DRIFTING) == version
    new = store.meta(DRIFTING, version)
    assert new["thresholds"] == {"buy": proposal.proposed.buy, "sell": proposal.proposed.sell}
    assert new["derived_from"]["version"] == source
    assert store.meta(DRIFTING, source)["thresholds"] == {"buy": 0.5, "sell": 0.5}  # untouched
    assert all(result.ok for result in store.verify(DRIFTING))
    folder = store.root / DRIFTING
    assert (folder / version / MODEL_FILE).read_bytes() == (
        folder / source / MODEL_FILE
    ).read_bytes()
    assert store.load(DRIFTING, version).thresholds == proposal.proposed
    assert store.load_compiled(DRIFTING, version).bundle.thresholds == proposal.proposed
    assert store.champion(STEADY) == champions[STEADY]
    async with session_factory() as session:
        row = await model_repo.champion_row(session=session, key=DRIFTING)
        [event, *_] = await model_repo.list_events(session=session, key=DRIFTING)
    assert row is not None
    assert (row.version, row.metrics) == (version, STORED[DRIFTING])
    assert (event.event, event.previous_version) == ("promoted", source)
    assert f"weekly report {report.week}: thresholds recalibrated" in event.reason

    def announced(values: list[bytes]) -> bool:
        return any(ModelEvent.model_validate_json(v).version == version for v in values)

    values = await read_topic(settings.bootstrap, settings.topics.models, until=announced)
    assert announced(values)


@pytest.mark.kafka
async def test_the_command_proposes_then_applies(
    kafka_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    settings = kafka_settings
    week, champions = await _live_period(settings, session_factory)
    env = child_env(settings)
    args = ("report", "weekly", "--week", week, "--no-charts")

    shown = await asyncio.to_thread(run_itff, env, *args)
    assert shown.returncode == 0, shown.stderr
    assert f"{DRIFTING}: proposed thresholds sell " in shown.stdout
    assert f"apply them with `itff report weekly --week {week} --apply`" in shown.stdout
    assert registry(settings).champion(DRIFTING) == champions[DRIFTING]  # nothing applied

    applied = await asyncio.to_thread(run_itff, env, *args, "--apply")
    assert applied.returncode == 0, applied.stderr
    new = registry(settings).champion(DRIFTING)
    assert new != champions[DRIFTING]
    assert f"{DRIFTING}: promoted {new} with the recalibrated thresholds" in applied.stdout
