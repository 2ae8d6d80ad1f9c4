"""The weekly verdict against the backtest on the live period: the batch path's positions over
exactly the live bars. Live signals come from the serving predictor (the live path), bars and
signals sit in real SQLite, the models in a real registry."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Settings, Signal
from bot.core import SAME_PERIOD, resolve_all, weekly_paths
from bot.pipeline import refresh_drift_gauge, weekly_report
from bot.pipeline.weekly import week_end
from bot.serving import Predictor
from storage import model_versions as model_repo
from storage.signals import OutcomeRecord, insert_live_metrics, insert_outcomes, insert_signals
from tests.support.consumer import SEED_BARS, daily_bars, publish_champions, registry, seed_bars

LIVE_BARS = 32
HONEST = "SPX-direction-logreg"
SKEWED = "SPX-direction-ridge"  # its live signals are stored with the call flipped
STORED = {"accuracy": 0.95, "precision": 0.95, "recall": 0.95}  # far from any live figure


def _flip(signal: Signal) -> Signal:
    up = signal.prediction > 0.5
    action = {"buy": "sell", "sell": "buy"}.get(signal.action, signal.action)
    return signal.model_copy(update={"prediction": 0.0 if up else 1.0, "action": action})


async def serve_live_period(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> str:
    bars = daily_bars()
    history = bars.iloc[: SEED_BARS + LIVE_BARS + 1]
    lines = (("direction", "logreg"), ("direction", "ridge"))
    champions = publish_champions(settings, "SPX", lines=lines, train=bars.iloc[:SEED_BARS])
    await seed_bars(session_factory, "SPX", history)
    predictor = Predictor(registry(settings))
    signals = []
    for end in range(SEED_BARS, SEED_BARS + LIVE_BARS):
        when: datetime = history.index[end].to_pydatetime()
        for p in predictor.predict_bars("SPX", history.iloc[: end + 1]):
            signal = Signal(
                alert_id=f"a-{when:%Y%m%d}", symbol="SPX", interval="1D", bar_time=when,
                model_key=p.model_key, model_version=p.model_version, target=p.target,
                prediction=p.prediction, probability=p.probability, action=p.action, ood=p.ood,
                latency_ms=3.0,
            )  # fmt: skip
            signals.append(_flip(signal) if p.model_key == SKEWED else signal)
    resolutions = resolve_all(
        history, bar_times=[s.bar_time for s in signals], horizons=[1] * len(signals),
        targets=[s.target for s in signals], predictions=[s.prediction for s in signals],
        actions=[s.action for s in signals],
    )  # fmt: skip
    outcomes = [
        OutcomeRecord(
            signal_id=s.signal_id,
            model_key=s.model_key,
            bar_time=s.bar_time,
            exit_time=r.exit_time,
            realised_return=r.realised_return,
            hit=r.hit,
            strategy_return=r.strategy_return,
        )
        for s, r in zip(signals, resolutions, strict=True)
        if r is not None
    ]
    async with session_factory() as session, session.begin():
        for key, version in champions.items():
            symbol, target, model_type = key.split("-")
            await model_repo.add_version(
                session=session, key=key, version=version, symbol=symbol, target=target,
                model_type=model_type, sha256="0" * 64, metrics=STORED, train_start=None,
                train_end=None, run_id=None,
            )  # fmt: skip
            await model_repo.set_champion(session=session, key=key, version=version)
        await insert_signals(session=session, signals=signals, horizons={})
        await insert_outcomes(session=session, outcomes=outcomes)
    last = pd.Timestamp(history.index[SEED_BARS + LIVE_BARS - 1])
    return "{}-W{:02d}".format(*last.isocalendar()[:2])


async def test_the_verdict_compares_with_the_batch_path_over_the_live_bars(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    week = await serve_live_period(settings, session_factory)

    report = await weekly_report(
        settings, session_factory=session_factory, week=week, registry=registry(settings)
    )

    rows = {(r["model_key"], r["window"]): r for r in report.rows}
    honest, skewed = rows[(HONEST, "30d")], rows[(SKEWED, "30d")]
    for row in (honest, skewed):
        assert row["comparison"] == SAME_PERIOD
        assert row["live_period_bars"] >= 20
        assert any(item.startswith("directional accuracy") for item in row["stored_drift"])
    # the live path and the batch path agree bar for bar: the same figures, within margin
    for values in honest["metrics"].values():
        assert values["live"] == values["live_period"]
    assert honest["verdict"] == "within margin"
    # a live path that calls the other way than the batch path on the same bars drifts
    assert skewed["verdict"].startswith("drift: directional accuracy")
    week_rows = rows[(HONEST, "7d")]  # 7 bars: too few, so the stored backtest is the reference
    assert week_rows["comparison"] == "stored backtest"
    text = weekly_paths(settings.report_dir, week)[0].read_text()
    assert f"| within margin | {SAME_PERIOD} (" in text
    assert "vs stored backtest: directional accuracy" in text


def _gauge(key: str, metric: str, comparison: str) -> float | None:
    labels = {"model_key": key, "metric": metric, "comparison": comparison}
    return REGISTRY.get_sample_value("itff_live_backtest_drift", labels)


async def test_the_drift_gauge_judges_with_the_weekly_comparison(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    week = await serve_live_period(settings, session_factory)
    end = week_end(week)
    report = await weekly_report(
        settings, session_factory=session_factory, week=week, registry=registry(settings)
    )
    rows = {r["model_key"]: r for r in report.rows if r["window"] == "30d"}
    async with session_factory() as session, session.begin():  # what the live-metrics job stores
        snapshots = {(key, "30d"): {"accuracy": 0.5, "signal_count": 30.0} for key in rows}
        await insert_live_metrics(session=session, snapshots=snapshots, computed_at=end)

    stored = await refresh_drift_gauge(session_factory)  # no registry: the stored backtest only
    assert stored[(HONEST, "accuracy", "stored")] == abs(0.5 - STORED["accuracy"])
    assert _gauge(HONEST, "accuracy", "stored") == abs(0.5 - STORED["accuracy"])

    values = await refresh_drift_gauge(
        session_factory, settings=settings, registry=registry(settings), now=end
    )

    # the same pair of figures as the weekly verdict, so the same gaps; the stored series is gone
    for key, row in rows.items():
        for name, figures in row["metrics"].items():
            if figures["live_period"] is None:
                continue
            gap = values[(key, name, "live_period")]
            assert gap == _gauge(key, name, "live_period")
            if key == HONEST:
                assert gap == 0.0
        assert _gauge(key, "accuracy", "stored") is None
    assert values[(SKEWED, "accuracy", "live_period")] > settings.drift_margin
