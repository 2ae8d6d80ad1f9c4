"""`itff_live_backtest_drift`: set by the scheduler from stored champions and live snapshots."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from apscheduler.events import EVENT_JOB_EXECUTED
from prometheus_client import REGISTRY

from bot.artifacts import ArtifactRegistry
from bot.contracts import Signal, utcnow
from bot.core import GAUGE_WINDOW, MIN_SIGNALS
from bot.pipeline import LIVE, ItffScheduler, refresh_drift_gauge
from storage import model_versions as model_repo
from storage.signals import OutcomeRecord, insert_live_metrics, insert_outcomes, insert_signals
from tests.support.postgres import both_stores

pytestmark = both_stores

KEY = "SPX-direction-logreg"
THIN = "NDX-direction-logreg"  # a champion with too few resolved signals
OTHER = "SPX-direction-hgb"  # has live metrics but is not a champion


class NoEvents:
    """The live-metrics job publishes nothing."""

    async def start(self) -> None:
        """Nothing to connect to."""

    async def publish(self, event: object) -> None:
        raise AssertionError(f"the live-metrics job must not publish {event!r}")


def drift(key: str, metric: str) -> float | None:
    """Against the stored backtest: these champions have no artifact for the live period."""
    labels = {"model_key": key, "metric": metric, "comparison": "stored"}
    return REGISTRY.get_sample_value("itff_live_backtest_drift", labels)


async def _champion(session_factory, key: str, metrics: dict[str, float]) -> None:
    async with session_factory() as session:
        await model_repo.add_version(
            session=session, key=key, version="v1", symbol=key.partition("-")[0],
            target="direction", model_type=key.rsplit("-", 1)[1], sha256="0" * 64, metrics=metrics,
            train_start=None, train_end=None, run_id=None,
        )  # fmt: skip
        await model_repo.set_champion(session=session, key=key, version="v1")
        await session.commit()


async def _snapshots(session_factory, at, snapshots) -> None:
    async with session_factory() as session, session.begin():
        await insert_live_metrics(session=session, snapshots=snapshots, computed_at=at)


async def test_gauge_holds_the_absolute_gap_of_the_latest_snapshot(session_factory) -> None:
    await _champion(session_factory, KEY, {"accuracy": 0.60, "precision": 0.50, "sharpe": 1.2})
    await _champion(session_factory, THIN, {"accuracy": 0.60})
    now = utcnow()
    enough = float(MIN_SIGNALS)
    await _snapshots(
        session_factory,
        now - timedelta(minutes=15),
        {(KEY, GAUGE_WINDOW): {"accuracy": 0.10, "precision": 0.10, "signal_count": enough}},
    )
    await _snapshots(
        session_factory,
        now,
        {
            (KEY, GAUGE_WINDOW): {"accuracy": 0.52, "precision": 0.53, "recall": 0.9,
                                  "sharpe": -3.0, "signal_count": enough},
            (KEY, "7d"): {"accuracy": 0.0, "precision": 0.0, "signal_count": enough},
            (THIN, GAUGE_WINDOW): {"accuracy": 0.10, "signal_count": enough - 1},
            (OTHER, GAUGE_WINDOW): {"accuracy": 0.10, "signal_count": enough},
        },
    )  # fmt: skip

    values = await refresh_drift_gauge(session_factory)

    # newest 30d snapshot against the stored backtest; recall has no backtest value, Sharpe is
    # not a rate metric; the thin champion and the non-champion get no series at all
    assert values.keys() == {(KEY, "accuracy", "stored"), (KEY, "precision", "stored")}
    assert drift(KEY, "accuracy") == abs(0.52 - 0.60)
    assert drift(KEY, "precision") == abs(0.53 - 0.50)
    assert drift(KEY, "recall") is None
    assert drift(KEY, "sharpe") is None
    assert drift(THIN, "accuracy") is None
    assert drift(OTHER, "accuracy") is None


async def test_a_series_disappears_when_its_key_stops_qualifying(session_factory) -> None:
    await _champion(session_factory, KEY, {"accuracy": 0.60})
    enough = float(MIN_SIGNALS)
    await _snapshots(
        session_factory, utcnow(), {(KEY, GAUGE_WINDOW): {"accuracy": 0.7, "n": enough}}
    )
    await refresh_drift_gauge(session_factory)
    assert drift(KEY, "accuracy") is not None

    async with session_factory() as session:
        await model_repo.add_version(
            session=session, key=KEY, version="v2", symbol="SPX", target="direction",
            model_type="logreg", sha256="1" * 64, metrics={}, train_start=None, train_end=None,
            run_id=None,
        )  # fmt: skip
        await model_repo.set_champion(session=session, key=KEY, version="v2")
        await session.commit()
    await refresh_drift_gauge(session_factory)  # the new champion has no backtest accuracy
    assert drift(KEY, "accuracy") is None


async def _resolved_signals(session_factory, *, hits: int, misses: int) -> None:
    """`hits + misses` daily buy signals of KEY with their outcomes (up calls; hits went up)."""
    first = utcnow().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=28)
    signals, outcomes = [], []
    for day in range(hits + misses):
        bar_time = first + timedelta(days=day)
        signal = Signal(
            alert_id=f"a{day}", symbol="SPX", interval="1D", bar_time=bar_time, model_key=KEY,
            model_version="v1", target="direction", prediction=0.7, probability=0.7,
            action="buy", ood=False, latency_ms=1.0,
        )  # fmt: skip
        realised = 0.01 if day < hits else -0.01
        signals.append(signal)
        outcomes.append(
            OutcomeRecord(
                signal_id=signal.signal_id,
                model_key=KEY,
                bar_time=bar_time,
                exit_time=bar_time + timedelta(days=1),
                realised_return=realised,
                hit=realised > 0,
                strategy_return=realised,
            )
        )
    async with session_factory() as session, session.begin():
        await insert_signals(session=session, signals=signals, horizons={KEY: 1})
        await insert_outcomes(session=session, outcomes=outcomes)


async def test_the_live_metrics_job_sets_the_gauge_from_resolved_signals(
    settings, session_factory
) -> None:
    await _champion(session_factory, KEY, {"accuracy": 0.60})
    await _resolved_signals(session_factory, hits=20, misses=5)  # live accuracy 0.8

    fast = settings.model_copy(update={"live_metrics_interval_minutes": 0.01})  # every 0.6 s
    scheduler = ItffScheduler(
        fast, session_factory=session_factory, registry=ArtifactRegistry(settings.artifact_dir),
        events=NoEvents(), name=f"drift-{settings.topic_prefix}",
    )  # fmt: skip
    done = asyncio.Event()
    scheduler.add_listener(lambda event: event.job_id == LIVE and done.set(), EVENT_JOB_EXECUTED)
    await scheduler.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=60)
    finally:
        await scheduler.shutdown()

    gap = drift(KEY, "accuracy")
    assert gap is not None
    assert abs(gap - 0.2) < 1e-9
