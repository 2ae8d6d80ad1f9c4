"""The live validation end to end: held-out bars replayed as TradingView alerts through the real
receiver, broker and consumer (with its outcome worker) into SQLite, then the daily report: one
audit line per request with its signals joined, and zero parity mismatches between the signals the
consumer served and the batch path; then the weekly report, and the dashboard's Overview, judge the
30 days against the backtest on the live period (20 resolved bars there)."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Settings, utcnow
from bot.core import SAME_PERIOD, STORED, audit_path
from bot.pipeline import daily_report, weekly_report
from consumers.runner import running_consumer
from panel_app.data import load
from panel_app.live_period import LivePeriod
from panel_app.queries import DashboardQueries
from producers.app import create_app
from storage import model_versions as model_repo
from storage.tables import Outcome
from tests.flows.test_alert_to_signal import tradingview_body
from tests.support.consumer import (
    SEED_BARS,
    count_rows,
    eventually,
    publish_champions,
    registry,
    sample_bars,
    seed_bars,
    signal_rows,
)

pytestmark = pytest.mark.kafka

REPLAYED = 26  # the week of the last resolved bar then holds 20 resolved bars in its 30 days
WEEK_30D = 20


async def test_replayed_bars_give_a_complete_audit_and_no_parity_mismatch(
    kafka_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    settings = kafka_settings
    bars = sample_bars("SPX")
    champions = publish_champions(settings, "SPX", train=bars.iloc[:SEED_BARS])
    await seed_bars(session_factory, "SPX", bars.iloc[:SEED_BARS])
    held_out = bars.iloc[SEED_BARS : SEED_BARS + REPLAYED]

    async with running_consumer(settings), TestClient(TestServer(create_app(settings))) as client:
        for time, row in held_out.iterrows():
            response = await client.post(
                "/webhook/tradingview", json=tradingview_body(settings, time, row)
            )
            assert response.status == 202, await response.text()

        async def served() -> bool:
            return len(await signal_rows(session_factory)) >= REPLAYED * len(champions)

        async def resolved() -> bool:  # every bar but the last has its next bar
            return await count_rows(session_factory, Outcome) >= (REPLAYED - 1) * len(champions)

        assert await eventually(served)
        assert await eventually(resolved)

    now = utcnow()
    report = await daily_report(
        settings,
        session_factory=session_factory,
        day=now.date(),
        registry=registry(settings),
        now=now.replace(year=now.year + 1),
    )
    lines = [
        json.loads(x) for x in audit_path(settings.report_dir, now.date()).read_text().splitlines()
    ]
    assert len(lines) == REPLAYED
    assert all(line["status"] == 202 for line in lines)
    assert all({s["model_key"] for s in line["signals"]} == set(champions) for line in lines)
    assert [line["bar_time"][:10] for line in lines] == [str(t.date()) for t in held_out.index]
    summary = report.summary
    assert summary["signals"] == REPLAYED * len(champions)
    assert summary["alerts_without_outcome"] == []
    assert summary["dead_letters_by_reason"] == {}
    assert summary["parity_checked"] == (REPLAYED - 1) * len(champions)
    assert summary["parity_mismatches"] == []

    async with session_factory() as session, session.begin():  # as the pipeline records them
        for key, version in champions.items():
            symbol, target, model_type = key.split("-")
            await model_repo.add_version(
                session=session, key=key, version=version, symbol=symbol, target=target,
                model_type=model_type, sha256="0" * 64, metrics={"accuracy": 0.5},
                train_start=None, train_end=None, run_id=None,
            )  # fmt: skip
            await model_repo.set_champion(session=session, key=key, version=version)
    last = held_out.index[-2]  # the week of the last resolved bar
    week = "{}-W{:02d}".format(*last.isocalendar()[:2])
    weekly = await weekly_report(
        settings, session_factory=session_factory, week=week, registry=registry(settings)
    )
    resolved_30d = {(r["model_key"], r["window"]): r for r in weekly.rows}
    for key in champions:
        row = resolved_30d[(key, "30d")]
        # the batch path over the same replayed bars: every bar, the same figures as live, so the
        # verdict that compares the two (20 bars) is within margin
        assert (row["live_period_bars"], row["comparison"]) == (WEEK_30D, SAME_PERIOD)
        assert (row["signals"], row["verdict"]) == (WEEK_30D, "within margin")
        for values in row["metrics"].values():
            assert values["live_period"] == values["live"]
        week_row = resolved_30d[(key, "7d")]
        assert (week_row["comparison"], week_row["verdict"]) == (STORED, "insufficient data")
    assert weekly.proposals == []  # nothing drifts: nothing to recalibrate

    # the Overview's Drift column makes the same choice over the live window (all: 25 bars)
    queries = DashboardQueries.from_url(settings.database_url)
    try:
        data = load(
            queries, window="all", drift_margin=settings.drift_margin,
            live_period=LivePeriod(registry(settings), cost_bps=settings.cost_bps),
        )  # fmt: skip
    finally:
        queries.close()
    overview = data.overview.set_index("model_key")
    for key in champions:
        assert overview.loc[key, "comparison"] == f"{SAME_PERIOD} ({REPLAYED - 1} bars)"
        assert overview.loc[key, "drift"] == "within margin"
