"""The weekly report's PNG charts, drawn by Bokeh and photographed by headless Chromium, linked
from the report's Markdown (`itff report weekly`)."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Settings, Signal
from bot.pipeline import chart_path, weekly_report
from panel_app.views.theme import BACKTEST_COLOR, LIVE_COLOR
from panel_app.weekly_charts import HEIGHT, WIDTH, chart_data, render_weekly_chart, weekly_figure
from storage import model_versions as model_repo
from storage.signals import OutcomeRecord, insert_outcomes, insert_signals
from tests.support.images import colours, rgb

WEEK = "2026-W40"
START = datetime(2026, 9, 28, tzinfo=UTC)
KEYS = ("SPX-direction-logreg", "NDX-direction-logreg")
MARGIN_PX = 12  # Bokeh's own white border around the drawing

ROWS = [
    {
        "model_key": "SPX-direction-logreg",
        "window": window,
        "signals": 25,
        "metrics": {
            "accuracy": {"live": 0.8, "backtest": 0.55, "live_period": 0.75},
            "precision": {"live": None, "backtest": 0.6, "live_period": None},
            "recall": {"live": 0.5, "backtest": None, "live_period": 0.5},
        },
        "verdict": "drift: directional accuracy +25.0 pp",
        "comparison": "stored backtest",
    }
    for window in ("7d", "30d")
]


def test_chart_data_has_a_bar_per_window_metric_and_side() -> None:
    data = chart_data(ROWS)
    assert len(data["x"]) == 2 * 3 * 3
    assert data["x"][:3] == [
        ("7d (25 signals)", "accuracy", "live"),
        ("7d (25 signals)", "accuracy", "backtest"),
        ("7d (25 signals)", "accuracy", "live period"),
    ]
    assert data["label"][:6] == ["0.80", "0.55", "0.75", "n/a", "0.60", "n/a"]
    assert data["value"][3] == 0.0  # a missing value draws no bar, labelled n/a


def test_the_title_says_each_window_s_verdict_and_comparison() -> None:
    title = weekly_figure(ROWS).title.text
    assert title.splitlines() == [
        "SPX-direction-logreg",
        "7d: drift: directional accuracy +25.0 pp (vs stored backtest)",
        "30d: drift: directional accuracy +25.0 pp (vs stored backtest)",
    ]


def _png_size(raw: bytes) -> tuple[int, int]:
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", raw[16:24])
    return int(width), int(height)


def _drawn_box(png: Path) -> tuple[int, int, int, int] | None:
    """The box holding every pixel that is not the page's white (None: a blank image)."""
    from PIL import Image, ImageChops

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        return ImageChops.difference(rgb, Image.new("RGB", rgb.size, "white")).getbbox()


async def _resolved(session_factory: async_sessionmaker[AsyncSession], key: str) -> None:
    signals = [
        Signal(
            alert_id=f"{key}-{i}",
            symbol=key.split("-", maxsplit=1)[0],
            interval="1D",
            bar_time=START + timedelta(hours=6 * i),
            model_key=key,
            model_version="v1",
            target="direction",
            prediction=0.7,
            probability=0.7,
            action="buy",
            ood=False,
            latency_ms=5.0,
        )
        for i in range(24)
    ]
    outcomes = [
        OutcomeRecord(
            signal_id=s.signal_id,
            model_key=key,
            bar_time=s.bar_time,
            exit_time=s.bar_time + timedelta(days=1),
            realised_return=0.01 if i % 3 else -0.01,
            hit=bool(i % 3),
            strategy_return=0.01 if i % 3 else -0.01,
        )
        for i, s in enumerate(signals)
    ]
    async with session_factory() as session, session.begin():
        symbol, target, model_type = key.split("-")
        await model_repo.add_version(
            session=session,
            key=key,
            version="v1",
            symbol=symbol,
            target=target,
            model_type=model_type,
            sha256="0" * 64,
            metrics={"accuracy": 0.55, "precision": 0.6},
            train_start=None,
            train_end=None,
            run_id=None,
        )
        await model_repo.set_champion(session=session, key=key, version="v1")
        await insert_signals(session=session, signals=signals, horizons={})
        await insert_outcomes(session=session, outcomes=outcomes)


@pytest.mark.browser
@pytest.mark.timeout(300)
async def test_the_weekly_report_draws_one_png_per_champion_beside_the_markdown(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    for key in KEYS:
        await _resolved(session_factory, key)

    report = await weekly_report(
        settings, session_factory=session_factory, week=WEEK, charts=render_weekly_chart
    )

    assert report.charts == [chart_path(settings.report_dir, WEEK, key) for key in sorted(KEYS)]
    for path in report.charts:
        # the figure itself, not a browser page around it
        assert _png_size(path.read_bytes()) == (WIDTH, HEIGHT)
        left, top, right, bottom = _drawn_box(path) or (0, 0, 0, 0)
        assert max(left, top, WIDTH - right, HEIGHT - bottom) <= MARGIN_PX  # no blank page
        assert {rgb(LIVE_COLOR), rgb(BACKTEST_COLOR)} <= colours(path)
    text = report.markdown.read_text()
    for key in KEYS:
        assert f"![{key}]({WEEK}/{key}.png)" in text
