"""`itff report weekly` and `itff report review`: champions' live metrics against their backtest,
the drift rule's verdict and the review's recommendation, from resolved signals in real SQLite."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Settings, Signal
from bot.core import weekly_paths
from bot.pipeline import review_report, weekly_report
from storage import model_versions as model_repo
from storage.signals import OutcomeRecord, insert_outcomes, insert_signals
from tests.support.cli import run_itff
from tests.support.env import child_env

WEEK = "2026-W40"  # Monday 2026-09-28 to Sunday 2026-10-04
START = datetime(2026, 9, 28, tzinfo=UTC)
BACKTEST = {"accuracy": 0.55}


async def _champion(session_factory: async_sessionmaker[AsyncSession], key: str) -> None:
    symbol, target, model_type = key.split("-")
    async with session_factory() as session, session.begin():
        await model_repo.add_version(
            session=session, key=key, version="v1", symbol=symbol, target=target,
            model_type=model_type, sha256="0" * 64, metrics=BACKTEST, train_start=None,
            train_end=None, run_id=None,
        )  # fmt: skip
        await model_repo.set_champion(session=session, key=key, version="v1")


async def _resolved(
    session_factory: async_sessionmaker[AsyncSession], key: str, hits: list[bool], start: datetime
) -> None:
    """Signals that called 'up', one every 6 hours from `start`; a hit when the bar went up."""
    signals = [
        Signal(
            alert_id=f"{key}-{start:%m%d}-{i}",
            symbol=key.split("-", maxsplit=1)[0],
            interval="1D",
            bar_time=start + timedelta(hours=6 * i),
            model_key=key,
            model_version="v1",
            target="direction",
            prediction=1.0,
            probability=0.7,
            action="buy",
            ood=False,
            latency_ms=5.0,
        )
        for i in range(len(hits))
    ]
    outcomes = [
        OutcomeRecord(
            signal_id=s.signal_id,
            model_key=key,
            bar_time=s.bar_time,
            exit_time=s.bar_time + timedelta(days=1),
            realised_return=0.01 if hit else -0.01,
            hit=hit,
            strategy_return=0.01 if hit else -0.01,
        )
        for s, hit in zip(signals, hits, strict=True)
    ]
    async with session_factory() as session, session.begin():
        await insert_signals(session=session, signals=signals, horizons={})
        await insert_outcomes(session=session, outcomes=outcomes)


async def test_each_champion_gets_its_verdict_over_7_and_30_days(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    for key in ("SPX-direction-logreg", "NDX-direction-logreg", "SPX-direction-hgb"):
        await _champion(session_factory, key)
    await _resolved(session_factory, "SPX-direction-logreg", [True] * 20 + [False] * 5, START)
    await _resolved(session_factory, "NDX-direction-logreg", [True] * 14 + [False] * 11, START)
    await _resolved(session_factory, "SPX-direction-hgb", [True] * 5, START)
    after = START + timedelta(days=8)  # the next week: not in this report
    await _resolved(session_factory, "SPX-direction-hgb", [True] * 30, after)

    report = await weekly_report(settings, session_factory=session_factory, week=WEEK)

    verdicts = {(r["model_key"], r["window"]): (r["signals"], r["verdict"]) for r in report.rows}
    for window in ("7d", "30d"):
        assert verdicts[("SPX-direction-logreg", window)] == (
            25,
            "drift: directional accuracy +25.0 pp",
        )
        assert verdicts[("NDX-direction-logreg", window)] == (25, "within margin")
        assert verdicts[("SPX-direction-hgb", window)] == (5, "insufficient data")
    markdown, document = weekly_paths(settings.report_dir, WEEK)
    assert document.exists()
    assert "| SPX-direction-logreg | 25 | 0.800 / 0.550 / n/a |" in markdown.read_text()


async def test_a_week_that_is_not_over_or_malformed_is_refused(settings: Settings) -> None:
    env = child_env(settings)
    this_week = "{}-W{:02d}".format(*datetime.now(UTC).isocalendar()[:2])
    for week, message in ((this_week, "is not over yet"), ("2026-49", "ISO week like 2026-W49")):
        result = await asyncio.to_thread(run_itff, env, "report", "weekly", "--week", week)
        assert result.returncode == 1
        assert message in result.stdout + result.stderr
        assert "Traceback" not in result.stderr


async def test_the_review_recommends_per_champion_with_its_evidence(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    lines = {
        "SPX-direction-logreg": [False] * 10 + [True] * 15,  # 0.60: within the margin
        "NDX-direction-logreg": [True] * 8 + [False] * 17,  # 0.32: below the backtest
        "NDX-direction-hgb": [True] * 8 + [False] * 17,  # the same, but promoted in the period
        "SPX-direction-hgb": [True] * 5,  # too few
    }
    for key, hits in lines.items():
        await _champion(session_factory, key)
        await _resolved(session_factory, key, hits, START)
    async with session_factory() as session, session.begin():
        await model_repo.add_event(
            session=session, key="NDX-direction-hgb", version="v1", previous_version="v0",
            event="promoted", reason="test", at=START + timedelta(days=1),
        )  # fmt: skip
    await weekly_report(settings, session_factory=session_factory, week=WEEK)

    until = (START + timedelta(days=8)).date()
    report = await review_report(
        settings, session_factory=session_factory, since=START.date(), until=until
    )

    rows = {row["model_key"]: row for row in report.rows}
    assert rows["SPX-direction-logreg"]["recommendation"] == "keep"
    # without a registry there is no batch path to run: the stored backtest, and it says so
    assert {row["compared_with"] for row in rows.values()} == {"stored backtest"}
    assert rows["NDX-direction-logreg"]["recommendation"] == "retrain"
    assert rows["NDX-direction-logreg"]["evidence"] == [
        "directional accuracy 0.320 vs 0.550 (-23.0 pp)"
    ]
    assert rows["NDX-direction-hgb"]["recommendation"] == "roll back"
    assert rows["SPX-direction-hgb"]["recommendation"] == "insufficient data"
    assert rows["NDX-direction-logreg"]["signals"] == 25
    assert rows["NDX-direction-logreg"]["latency_ms"] == {"p50": 5.0, "p95": 5.0}
    assert rows["NDX-direction-logreg"]["verdicts"] == [
        "2026-W40 drift: directional accuracy -23.0 pp"
    ]
    text = report.markdown.read_text()
    assert "## NDX-direction-hgb (v1): roll back" in text
    assert "deploy/rollback_checklist.md" in text
    assert "- recommendation compared with: stored backtest" in text
