"""The daily snapshot PNG (`itff report snapshot`, run by the daily report) shows the backtest on
the live period: its table beside the overview and the dashed curve on each equity chart. Real
SQLite, a real artifact registry, Debian's Chromium."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from bokeh.models import ColumnDataSource, GlyphRenderer
from bokeh.models.widgets.markups import Div
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Settings
from bot.core import SAME_PERIOD
from panel_app.live_period import LivePeriod
from panel_app.snapshot import render_snapshot, snapshot_data, snapshot_layout
from tests.panel_app.test_live_period import store_live_snapshot
from tests.pipeline.test_weekly_same_period import HONEST, LIVE_BARS, SKEWED, serve_live_period

DASHED = [6]  # Bokeh's "dashed"


def _dashed_curves(layout: object) -> list[ColumnDataSource]:
    """The data of every dashed line: the backtest on the live period."""
    renderers = layout.select({"type": GlyphRenderer})  # type: ignore[attr-defined]
    return [r.data_source for r in renderers if getattr(r.glyph, "line_dash", None) == DASHED]


def _text(layout: object) -> str:
    return "".join(div.text for div in layout.select({"type": Div}))  # type: ignore[attr-defined]


async def test_the_snapshot_lays_out_the_backtest_on_the_live_period(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await serve_live_period(settings, session_factory)
    await store_live_snapshot(session_factory)

    layout = snapshot_layout(snapshot_data(settings), settings.drift_margin)

    text = _text(layout)
    assert "<h3>Backtest on the live period</h3>" in text
    assert text.count(f"{SAME_PERIOD} ({LIVE_BARS} bars)") == 2  # the overview's Compared with
    for key in (HONEST, SKEWED):
        assert f">{key}<" in text
    curves = _dashed_curves(layout)
    assert sorted(len(curve.data["equity"]) for curve in curves) == [LIVE_BARS, LIVE_BARS]

    without = snapshot_layout(
        snapshot_data(settings, live_period=LivePeriod(None, cost_bps=settings.cost_bps)),
        settings.drift_margin,
    )
    assert all(len(curve.data["equity"]) == 0 for curve in _dashed_curves(without))
    assert "unavailable: no artifact registry" in _text(without)


@pytest.mark.browser
async def test_the_snapshot_png_is_rendered_with_it(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    await serve_live_period(settings, session_factory)
    # Playwright's sync API wants a thread without an event loop
    target = await asyncio.to_thread(render_snapshot, settings, tmp_path / "snapshot.png")
    with Image.open(target) as image:
        width, height = image.size
    assert width >= 1400
    assert height > 1400  # overview, live-period table, two equity charts with drawdowns, latency
