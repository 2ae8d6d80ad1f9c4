"""`itff report snapshot`: the overview table, the backtest on the live period (its table and the
dashed curve on each equity chart), equity and latency charts as one PNG.

The page is the dashboard's own tables and Bokeh figures, written as a self-contained HTML file
(inline resources, no network) and photographed by headless Chromium through Playwright.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from bokeh.embed import file_html
from bokeh.layouts import column
from bokeh.models.widgets.markups import Div
from bokeh.resources import INLINE

from bot.artifacts import registry_from_settings
from bot.contracts import ConfigError, Settings, TransientError, utcnow
from panel_app.compare import METRICS, SOURCES
from panel_app.compare import column as metric_column
from panel_app.data import DashboardData, load
from panel_app.live_period import LivePeriod
from panel_app.queries import DashboardQueries
from panel_app.series import latency_percentiles
from panel_app.views.charts import EquityChart, LatencyChart
from panel_app.views.latency import summary_text
from panel_app.views.overview import NO_MODELS, SAME_PERIOD_NOTE, styled

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
PAGE_WIDTH = 1400
RENDER_TIMEOUT_MS = 60_000
PYTHON_FORMATS = {"rate": "{:.2%}", "ratio": "{:.2f}", "error": "{:.4f}", "count": "{:,.0f}"}


def snapshot_path(report_dir: Path, day: date) -> Path:
    """`REPORT_DIR/live/dashboards/YYYY-MM-DD.png`."""
    return report_dir / "live" / "dashboards" / f"{day.isoformat()}.png"


def find_chromium() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise ConfigError(
        "the snapshot needs Chromium: install it (Debian: `apt-get install chromium`) "
        "and make sure `chromium` is on PATH"
    )


def overview_html(frame: pd.DataFrame, margin: float) -> str:
    if frame.empty:
        return f"<p>{NO_MODELS}</p>"
    formats = {
        metric_column(metric, source): PYTHON_FORMATS[metric.kind]
        for metric in METRICS
        for source in SOURCES
    }
    titles = {
        metric_column(metric, source): f"{metric.label} {source}"
        for metric in METRICS
        for source in SOURCES
    } | {
        "model_key": "model",
        "drift": f"drift (margin {100 * margin:.0f} pp)",
        "comparison": "compared with",
    }
    styler = styled(frame).hide(axis="index").hide(["drifting"], axis="columns")
    styler = styler.format(formats, na_rep="-").relabel_index(
        [titles.get(name, name) for name in frame.columns if name != "drifting"], axis="columns"
    )
    html: str = styler.set_table_styles(
        [{"selector": "td, th", "props": "padding: 2px 8px; font: 13px sans-serif"}]
    ).to_html()
    return html


def same_period_html(table: pd.DataFrame) -> str:
    """The Overview's backtest-on-the-live-period table (nothing when there is no champion)."""
    if table.empty:
        return ""
    note = SAME_PERIOD_NOTE.replace("**", "").replace("*", "").replace("`", "")
    html: str = (
        table.style.hide(axis="index")
        .format(precision=3, na_rep="-")
        .set_table_styles(
            [{"selector": "td, th", "props": "padding: 2px 8px; font: 13px sans-serif"}]
        )
        .to_html()
    )
    return f"<h3>Backtest on the live period</h3><p>{note}</p>{html}"


def snapshot_layout(data: DashboardData, margin: float) -> Any:
    """The Bokeh layout of the snapshot: heading, overview table, the backtest on the live period,
    equity per champion (with its dashed live-period curve), latency."""
    parts: list[Any] = [
        Div(
            text=f"<h2>ITFF live vs backtest, {utcnow():%Y-%m-%d %H:%M} UTC, "
            f"live window {data.window}</h2>{overview_html(data.overview, margin)}"
            f"{same_period_html(data.same_period.table)}",
            width=PAGE_WIDTH,
        )
    ]
    for pair in data.equity:
        chart = EquityChart(height=260)
        chart.show(pair)
        parts += [chart.equity, chart.drawdown]
    latency = LatencyChart(height=260)
    latency.show(latency_percentiles(data.latencies))
    parts += [Div(text=summary_text(data) or "No signals in this window.", width=PAGE_WIDTH)]
    parts.append(latency.figure)
    for part in parts:
        part.width = PAGE_WIDTH
        if not isinstance(part, Div):
            part.sizing_mode = "fixed"
            part.toolbar_location = None  # a picture has nothing to click
    return column(*parts)


def screenshot(html: str, target: Path, *, element: str | None = None) -> None:
    """Open `html` in headless Chromium and save a PNG at `target`: the full page, or only the
    first element matching the CSS selector `element` (a chart without the blank page around it)."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="itff-snapshot-") as scratch:
        page_file = Path(scratch) / "snapshot.html"
        page_file.write_text(html, encoding="utf-8")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch_persistent_context(
                    str(Path(scratch) / "profile"),
                    executable_path=find_chromium(),
                    args=list(CHROMIUM_ARGS),
                    viewport={"width": PAGE_WIDTH + 40, "height": 900},
                )
                try:
                    page = browser.new_page()
                    page.goto(page_file.as_uri())
                    page.wait_for_function(
                        "() => window.Bokeh && Bokeh.documents.length > 0 && "
                        "Bokeh.documents.every((doc) => doc.is_idle)",
                        timeout=RENDER_TIMEOUT_MS,
                    )
                    if element is None:
                        page.screenshot(path=str(target), full_page=True)
                    else:
                        page.locator(element).first.screenshot(path=str(target))
                finally:
                    browser.close()
        except PlaywrightError as exc:
            raise TransientError(f"Chromium could not render the snapshot: {exc}") from exc


def snapshot_data(
    settings: Settings, *, window: str = "all", live_period: LivePeriod | None = None
) -> DashboardData:
    """What the snapshot shows, read as the dashboard reads it; the backtest on the live period
    from the artifact registry of the settings unless `live_period` is given."""
    if live_period is None:
        live_period = LivePeriod(registry_from_settings(settings), cost_bps=settings.cost_bps)
    queries = DashboardQueries.from_url(settings.database_url, ttl_seconds=1.0)
    try:
        return load(
            queries, window=window, drift_margin=settings.drift_margin, live_period=live_period
        )
    finally:
        queries.close()


def render_snapshot(settings: Settings, target: Path, *, window: str = "all") -> Path:
    """Read the data, lay it out and photograph it; returns `target`."""
    data = snapshot_data(settings, window=window)
    html = file_html(
        snapshot_layout(data, settings.drift_margin), resources=INLINE, title="ITFF snapshot"
    )
    screenshot(html, target)
    return target
