"""Live/backtest parity: signals made by the serving path are recomputed by the batch path from the
stored bars (real registry, real SQLite); a live feature computed differently is caught."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pandas as pd
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Settings, Signal
from bot.core import build_features
from bot.pipeline import daily_report, parity_report
from bot.serving import Prediction, Predictor
from storage.signals import OutcomeRecord, insert_outcomes, insert_signals
from tests.support.cli import run_itff
from tests.support.consumer import publish_champions, registry, sample_bars, seed_bars
from tests.support.env import child_env
from tests.support.webhook import down_bootstrap

KEY = "SPX-direction-logreg"
LIVE_BARS = 6


def _signal(prediction: Prediction, time: pd.Timestamp) -> Signal:
    return Signal(
        alert_id=f"a-{time:%Y%m%d}",
        symbol="SPX",
        interval="1D",
        bar_time=time.to_pydatetime(),
        model_key=prediction.model_key,
        model_version=prediction.model_version,
        target=prediction.target,
        prediction=prediction.prediction,
        probability=prediction.probability,
        action=prediction.action,
        ood=prediction.ood,
        latency_ms=5.0,
    )


def _live_signals(settings: Settings, bars: pd.DataFrame, *, skew_at: int | None) -> list[Signal]:
    """What the serving path emits for each of the last bars, from the bars known then; at
    `skew_at` one live feature is computed differently (scaled by 1.5)."""
    predictor = Predictor(registry(settings))
    signals = []
    for position in range(len(bars) - LIVE_BARS, len(bars)):
        known = bars.iloc[: position + 1]
        if position == skew_at:
            features = build_features(known)
            features["ret_1"] = features["ret_1"] * 1.5
            found = predictor.predict_rows(KEY, features.iloc[-2:])
        else:
            found = [p for p in predictor.predict_bars("SPX", known) if p.model_key == KEY]
        signals.extend(_signal(p, known.index[-1]) for p in found)
    return signals


async def _store(session_factory: async_sessionmaker[AsyncSession], signals: list[Signal]) -> None:
    async with session_factory() as session, session.begin():
        await insert_signals(session=session, signals=signals, horizons={})
        await insert_outcomes(
            session=session,
            outcomes=[
                OutcomeRecord(
                    signal_id=s.signal_id,
                    model_key=s.model_key,
                    bar_time=s.bar_time,
                    exit_time=s.bar_time + timedelta(days=1),
                    realised_return=0.01,
                    hit=True,
                    strategy_return=0.01,
                )
                for s in signals
            ],
        )


def _mismatch_count() -> float:
    return REGISTRY.get_sample_value("itff_parity_mismatches_total", {"model_key": KEY}) or 0.0


async def test_signals_of_the_serving_path_are_reproduced_by_the_batch_path(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    bars = sample_bars("SPX").iloc[:600]
    publish_champions(settings, "SPX", lines=[("direction", "logreg")], train=bars.iloc[:500])
    await seed_bars(session_factory, "SPX", bars)
    await _store(session_factory, _live_signals(settings, bars, skew_at=None))

    report = await parity_report(session_factory=session_factory, registry=registry(settings))

    assert report.checked == LIVE_BARS
    assert report.mismatches == []


async def test_a_live_feature_computed_differently_is_a_parity_mismatch(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    bars = sample_bars("SPX").iloc[:600]
    publish_champions(settings, "SPX", lines=[("direction", "logreg")], train=bars.iloc[:500])
    await seed_bars(session_factory, "SPX", bars)
    await _store(session_factory, _live_signals(settings, bars, skew_at=len(bars) - 3))
    before = _mismatch_count()

    report = await parity_report(session_factory=session_factory, registry=registry(settings))

    assert report.checked == LIVE_BARS
    [mismatch] = report.mismatches
    assert mismatch.signal.bar_time == bars.index[-3].to_pydatetime()
    assert mismatch.problem is not None
    assert mismatch.problem.startswith("score ")
    assert _mismatch_count() == before + 1

    result = await asyncio.to_thread(run_itff, child_env(settings), "report", "parity")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 parity mismatch(es) in 6 resolved signals" in result.stdout
    assert f"{KEY}" in result.stdout
    assert str(bars.index[-3].date()) in result.stdout

    offline = settings.model_copy(update={"kafka_bootstrap": down_bootstrap()})
    today = datetime.now(UTC)
    daily = await daily_report(
        offline,
        session_factory=session_factory,
        day=today.date(),
        registry=registry(settings),
        now=today + timedelta(days=1),
    )
    assert daily.summary["parity_checked"] == LIVE_BARS
    assert [p["signal_id"] for p in daily.summary["parity_mismatches"]] == [
        mismatch.signal.signal_id
    ]
    assert "1 live/backtest parity mismatch(es)" in " ".join(daily.anomalies)
    assert "- parity: 1 mismatch(es) in 6 signals resolved this day" in daily.markdown.read_text()
