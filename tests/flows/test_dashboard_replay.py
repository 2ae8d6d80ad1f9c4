"""The whole flow into the dashboard: a real pipeline run trains and promotes a champion on older
sample bars, the newest bars are replayed as TradingView alerts through the real webhook receiver,
Kafka and the consumer, live metrics are snapshotted, and a real browser finds it all.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Locator, Page, async_playwright, expect
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.artifacts import ArtifactRegistry
from bot.contracts import Settings
from bot.kafka import ModelEventPublisher
from bot.pipeline import run_pipeline, snapshot_live_metrics
from consumers.runner import running_consumer
from panel_app.queries import DashboardQueries
from producers import replay as rp
from producers.app import create_app
from storage.tables import Outcome, SignalRow
from tests.flows.test_dashboard_browser import (
    CHROMIUM_ARGS,
    PASSWORD,
    ROOT,
    UI_TIMEOUT_MS,
    USERNAME,
    _wait_for_health,
    chromium,
    free_port,
)
from tests.support.consumer import eventually
from tests.support.env import child_env

pytestmark = [pytest.mark.kafka, pytest.mark.browser, pytest.mark.timeout(1500)]

SAMPLE = ROOT / "data" / "sample" / "SPX_1d.csv"
TRAIN_BARS, REPLAYED = 1400, 30
KEY = "SPX-direction-logreg"
expect.set_options(timeout=UI_TIMEOUT_MS)  # a wait for the page, not a speed requirement


def split_sample(folder: Path) -> Path:
    """Training bars as the pipeline's CSV source; the newest bars as the file to replay."""
    bars = pd.read_csv(SAMPLE)
    source = folder / "source"
    source.mkdir(parents=True)
    bars.iloc[-(TRAIN_BARS + REPLAYED) : -REPLAYED].to_csv(source / "SPX_1d.csv", index=False)
    bars.tail(REPLAYED).to_csv(folder / "SPX_replay.csv", index=False)
    return source


async def count(session_factory: async_sessionmaker[AsyncSession], table: type) -> int:
    async with session_factory() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


async def train_champion(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with ModelEventPublisher(settings) as events:
        summary = await run_pipeline(
            settings,
            session_factory=session_factory,
            registry=ArtifactRegistry(settings.artifact_dir),
            events=events,
            trigger="test",
        )
    assert summary.status == "succeeded", summary.error


async def replay_through_the_stack(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], replay_file: Path
) -> None:
    shots = list(
        rp.tradingview_shots(
            rp.read_bars(replay_file),
            symbol="SPX",
            interval=settings.interval,
            passphrase=settings.tradingview_passphrase.get_secret_value(),
        )
    )
    async with running_consumer(settings), TestServer(create_app(settings)) as server:
        async with rp.client_session(1) as http:
            base = str(server.make_url("")).rstrip("/")
            summary = await rp.fire(http, base, shots, rate=0, concurrency=1)
        assert len(summary.accepted_ids) == REPLAYED

        async def resolved() -> bool:
            return (
                await count(session_factory, SignalRow) == REPLAYED
                and await count(session_factory, Outcome) == REPLAYED - 1
            )

        assert await eventually(resolved, within=300.0)
    await snapshot_live_metrics(session_factory=session_factory, cost_bps=settings.cost_bps)


def start_dashboard(settings: Settings, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = child_env(
        ITFF_DATABASE_URL=settings.database_url,
        ITFF_DASH_PORT=str(port),
        ITFF_DASH_USERNAME=USERNAME,
        ITFF_DASH_PASSWORD=PASSWORD,
        ITFF_LOG_JSON="false",
    )
    log = workdir / "dashboard.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "itff"), "dashboard"],
            cwd=workdir,
            env=env,
            stdout=sink,
            stderr=sink,
        )
    url = f"http://127.0.0.1:{port}"
    _wait_for_health(process, url, log)
    return process, url


def shown(page: Page, text: str, *, exact: bool = True) -> Locator:
    return page.get_by_text(text, exact=exact).filter(visible=True).first


async def check_views(page: Page, url: str, expected: dict[str, str], tmp_path: Path) -> None:
    await page.goto(f"{url}/")
    await page.fill("input[name=username]", USERNAME)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    for text in (KEY, expected["live_accuracy"], expected["backtest_accuracy"]):
        await expect(shown(page, text)).to_be_visible()
    await page.screenshot(path=str(tmp_path / "replay-overview.png"), full_page=True)
    checks = {
        "Equity": f"over {REPLAYED - 1} bars",
        "Signals": f"Latest {REPLAYED} signals",
        "Models": "champion",
        "Pipeline": "succeeded",
        "Latency": f"across {REPLAYED} signals",
    }
    for tab, text in checks.items():
        await page.locator(".bk-tab", has_text=tab).click()
        await expect(shown(page, text, exact=False)).to_be_visible()
        await page.screenshot(path=str(tmp_path / f"replay-{tab.lower()}.png"), full_page=True)
    keep_screenshots(tmp_path)


def keep_screenshots(folder: Path) -> None:
    """Copy the screenshots under reports/ for a human to look at."""
    keep = ROOT / "reports" / "e2e" / "dashboard"
    keep.mkdir(parents=True, exist_ok=True)
    for shot in folder.glob("replay-*.png"):
        shutil.copy(shot, keep / shot.name)


def expected_figures(settings: Settings) -> dict[str, str]:
    """What the stored rows say (read back, not recomputed), formatted as the dashboard shows."""
    queries = DashboardQueries.from_url(settings.database_url)
    try:
        live = queries.live_metrics("all").set_index("model_key")["metrics"][KEY]
        backtest = queries.champions().set_index("model_key")["metrics"][KEY]
    finally:
        queries.close()
    return {
        "live_accuracy": f"{live['accuracy']:.2%}",
        "backtest_accuracy": f"{backtest['accuracy']:.2%}",
    }


async def test_replayed_bars_fill_every_view(
    kafka_settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    source = split_sample(tmp_path)
    settings = kafka_settings.model_copy(
        update={
            "symbols": ["SPX"],
            "targets": ["direction"],
            "model_types": ["logreg"],
            "data_source": f"csv:{source}",
            "pipeline_workers": 1,
        }
    )
    await train_champion(settings, session_factory)
    await replay_through_the_stack(settings, session_factory, tmp_path / "SPX_replay.csv")
    expected = expected_figures(settings)

    process, url = start_dashboard(settings, tmp_path)
    try:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path=chromium(),
                args=CHROMIUM_ARGS,
                viewport={"width": 1500, "height": 1000},
            )
            context.set_default_timeout(UI_TIMEOUT_MS)
            try:
                await check_views(await context.new_page(), url, expected, tmp_path)
            finally:
                await context.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
