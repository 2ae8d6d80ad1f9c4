"""A database seeded with known numbers through the real repository functions, for dashboard tests.

Two champions (`SPX-direction-logreg` v2, `NDX-return-ridge` v1), a retired and a challenger
version, promotions, two pipeline runs, backtest equity curves, signals with outcomes and
live-metric snapshots. `SEED` holds the figures the tests expect to find.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Signal, utcnow
from bot.pipeline.snapshots import fold_new_outcomes
from storage import model_versions as model_repo
from storage import runs as run_repo
from storage import signals as signal_repo

SHA = {"a1": "a" * 64, "a2": "b" * 64, "b1": "c" * 64, "c1": "d" * 64}
BAR0 = datetime(2018, 10, 1, tzinfo=UTC)
N_SIGNALS = 20
N_OUTCOMES = 15
N_EQUITY = 60

A_KEY, B_KEY, C_KEY = "SPX-direction-logreg", "NDX-return-ridge", "SPX-direction-hgb"
A_BACKTEST = {
    "accuracy": 0.5625,
    "precision": 0.58,
    "recall": 0.61,
    "mae": None,
    "profit_factor": 1.35,
    "sharpe": 0.92,
    "n": 1200.0,
}
B_BACKTEST = {
    "accuracy": 0.53,
    "precision": 0.55,
    "recall": 0.6,
    "mae": 0.0087,
    "profit_factor": 1.1,
    "sharpe": 0.41,
    "n": 1200.0,
}
A_LIVE = {
    "accuracy": 0.4825,
    "precision": 0.5,
    "recall": 0.55,
    "mae": None,
    "profit_factor": 0.9,
    "sharpe": -0.3,
    "signal_count": 24.0,
}
B_LIVE = {
    "accuracy": 0.55,
    "precision": 0.56,
    "recall": 0.58,
    "mae": 0.0091,
    "profit_factor": 1.2,
    "sharpe": 0.5,
    "signal_count": 24.0,
}


@dataclass(frozen=True, slots=True)
class Seeded:
    now: datetime
    a_latencies: list[float]
    b_latencies: list[float]


def backtest_return(i: int) -> float:
    return 0.01 if i % 3 else -0.005


def live_return(key: str, i: int) -> float:
    return (0.01 if i % 2 else -0.004) if key == A_KEY else (0.002 if i % 2 else 0.0)


def latency(key: str, i: int) -> float:
    return (10.0 if key == A_KEY else 30.0) + i


async def _versions(session: AsyncSession, now: datetime) -> None:
    specs = [
        (A_KEY, "v1", "SPX", "direction", "logreg", "a1", {**A_BACKTEST, "accuracy": 0.54}),
        (A_KEY, "v2", "SPX", "direction", "logreg", "a2", A_BACKTEST),
        (B_KEY, "v1", "NDX", "return", "ridge", "b1", B_BACKTEST),
        (C_KEY, "v1", "SPX", "direction", "hgb", "c1", {**A_BACKTEST, "accuracy": 0.55}),
    ]
    for key, version, symbol, target, model_type, sha, metrics in specs:
        await model_repo.add_version(
            session=session,
            key=key,
            version=version,
            symbol=symbol,
            target=target,
            model_type=model_type,
            sha256=SHA[sha],
            metrics=metrics,
            train_start=datetime(1999, 1, 4, tzinfo=UTC),
            train_end=datetime(2018, 9, 28, tzinfo=UTC),
            run_id="run-1",
        )
        await session.flush()
    promotions = [(A_KEY, "v1", None, 3), (B_KEY, "v1", None, 3), (A_KEY, "v2", "v1", 1)]
    for key, version, previous, days_ago in promotions:
        await model_repo.set_champion(
            session=session, key=key, version=version, at=now - timedelta(days=days_ago)
        )
        await model_repo.add_event(
            session=session,
            key=key,
            version=version,
            previous_version=previous,
            event="promoted",
            reason="first model of this key" if previous is None else "accuracy 0.5625 beats 0.54",
            at=now - timedelta(days=days_ago),
        )
    await model_repo.mark_verified(session=session, key=A_KEY, version="v2", ok=True, at=now)
    await model_repo.mark_verified(session=session, key=B_KEY, version="v1", ok=False, at=now)


async def _equity(session: AsyncSession) -> None:
    for key, version in ((A_KEY, "v2"), (B_KEY, "v1")):
        equity, rows = 1.0, []
        for i in range(N_EQUITY):
            equity *= 1 + backtest_return(i)
            rows.append(
                {
                    "time": BAR0 + timedelta(days=i),
                    "position": 1.0,
                    "strategy_return": backtest_return(i),
                    "equity": equity,
                }
            )
        await model_repo.replace_equity(session=session, key=key, version=version, rows=rows)


async def _signals(session: AsyncSession, now: datetime) -> None:
    for key, symbol, target, version, actions in (
        (A_KEY, "SPX", "direction", "v2", ("buy", "sell")),
        (B_KEY, "NDX", "return", "v1", ("buy", "hold")),
    ):
        signals = [
            Signal(
                alert_id=f"{symbol}-{i:03d}",
                symbol=symbol,
                interval="1D",
                bar_time=BAR0 + timedelta(days=i),
                model_key=key,
                model_version=version,
                target=target,
                prediction=0.6 if actions[i % 2] == "buy" else 0.4,
                probability=0.6 if target == "direction" else None,
                action=actions[i % 2],
                ood=False,
                latency_ms=latency(key, i),
                emitted_at=now - timedelta(minutes=N_SIGNALS - i),
            )
            for i in range(N_SIGNALS)
        ]
        await signal_repo.insert_signals(session=session, signals=signals, horizons={key: 1})
        await signal_repo.insert_outcomes(
            session=session,
            outcomes=[
                signal_repo.OutcomeRecord(
                    signal_id=s.signal_id,
                    model_key=key,
                    bar_time=s.bar_time,
                    exit_time=s.bar_time + timedelta(days=1),
                    realised_return=0.01,
                    hit=True,
                    strategy_return=live_return(key, i),
                )
                for i, s in enumerate(signals[:N_OUTCOMES])
            ],
        )


async def _live_metrics(session: AsyncSession, now: datetime) -> None:
    older = {(A_KEY, "all"): {**A_LIVE, "accuracy": 0.7}}
    await signal_repo.insert_live_metrics(
        session=session, snapshots=older, computed_at=now - timedelta(hours=1)
    )
    latest = {(A_KEY, "all"): A_LIVE, (B_KEY, "all"): B_LIVE, (A_KEY, "7d"): {"accuracy": 0.4}}
    await signal_repo.insert_live_metrics(session=session, snapshots=latest, computed_at=now)


async def _runs(session: AsyncSession, now: datetime) -> None:
    await run_repo.start_run(
        session=session,
        run_id="run-1",
        trigger="schedule",
        log_path="logs/pipeline/run-1.log",
        started_at=now - timedelta(days=1),
    )
    await run_repo.start_run(
        session=session,
        run_id="run-2",
        trigger="manual",
        log_path="logs/pipeline/run-2.log",
        started_at=now - timedelta(hours=2),
    )
    await session.flush()
    await run_repo.finish_run(
        session=session,
        run_id="run-1",
        status="succeeded",
        counts={"models": 3},
        decisions={A_KEY: {"decision": "promoted", "reason": "accuracy 0.5625 beats 0.54"}},
        metrics={},
        anomalies={},
        finished_at=now - timedelta(days=1) + timedelta(seconds=42.5),
    )
    await run_repo.finish_run(
        session=session,
        run_id="run-2",
        status="failed",
        counts={},
        decisions={},
        metrics={},
        anomalies={},
        error="data source unavailable",
        finished_at=now - timedelta(hours=2) + timedelta(seconds=3),
    )


async def seed_dashboard(session_factory: async_sessionmaker[AsyncSession]) -> Seeded:
    """Fill a migrated database with the known figures above."""
    now = utcnow()
    async with session_factory() as session:
        await _versions(session, now)
        await _equity(session)
        await _signals(session, now)
        await _live_metrics(session, now)
        await _runs(session, now)
        await session.commit()
    # the equity view reads the running aggregates, as after the live-metrics snapshot
    await fold_new_outcomes(session_factory=session_factory, cost_bps=1.0)
    return Seeded(
        now=now,
        a_latencies=[latency(A_KEY, i) for i in range(N_SIGNALS)],
        b_latencies=[latency(B_KEY, i) for i in range(N_SIGNALS)],
    )
