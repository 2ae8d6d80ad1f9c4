"""The weekly report's charts: per champion, live against the stored backtest and the backtest on
the live period on every rate metric over 7 and 30 days, the verdict and the comparison it used in
the title; a Bokeh bar chart photographed by headless Chromium (`panel_app.snapshot`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bokeh.embed import file_html
from bokeh.models import ColumnDataSource, FactorRange, NumeralTickFormatter, Range1d
from bokeh.models.annotations import LabelSet
from bokeh.plotting import figure
from bokeh.resources import INLINE
from bokeh.transform import factor_cmap

from panel_app.snapshot import screenshot
from panel_app.views.theme import BACKTEST_COLOR, LIVE_COLOR, LIVE_PERIOD_COLOR

SOURCES = ("live", "backtest", "live period")
KEYS = {"live": "live", "backtest": "backtest", "live period": "live_period"}  # in the rows
WIDTH, HEIGHT = 900, 360
FIGURE = ".bk-Figure"  # the Bokeh figure's element: the PNG holds the chart, not the page


def chart_data(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Bars of one champion's rows: x = (window, metric, source), the value (missing as 0) and
    its label ("n/a" when missing)."""
    x, value, label = [], [], []
    for row in rows:
        for metric, pair in row["metrics"].items():
            for source in SOURCES:
                found = pair.get(KEYS[source])
                x.append((f"{row['window']} ({row['signals']} signals)", metric, source))
                value.append(0.0 if found is None else float(found))
                label.append("n/a" if found is None else f"{found:.2f}")
    return {"x": x, "value": value, "label": label, "source": [item[2] for item in x]}


def weekly_figure(rows: list[dict[str, Any]]) -> Any:
    """One champion's bar chart; the title carries each window's verdict."""
    data = chart_data(rows)
    lines = [
        f"{row['window']}: {row['verdict']}"
        + (f" (vs {row['comparison']})" if row.get("comparison") else "")
        for row in rows
    ]
    title = "\n".join([rows[0]["model_key"] if rows else "no champion", *lines])
    plot = figure(
        x_range=FactorRange(*data["x"]), y_range=Range1d(start=0, end=1.1), height=HEIGHT,
        width=WIDTH, title=title, toolbar_location=None,
    )  # fmt: skip
    source = ColumnDataSource(data)
    colors = factor_cmap(
        "source", palette=[LIVE_COLOR, BACKTEST_COLOR, LIVE_PERIOD_COLOR], factors=list(SOURCES)
    )
    plot.vbar(x="x", top="value", width=0.9, source=source, fill_color=colors, line_color=None)
    plot.add_layout(
        LabelSet(x="x", y="value", text="label", source=source, text_align="center",
                 text_font_size="9pt", y_offset=2)
    )  # fmt: skip
    plot.yaxis.formatter = NumeralTickFormatter(format="0%")
    plot.xaxis.major_label_orientation = 1.0
    plot.xgrid.grid_line_color = None
    return plot


def render_weekly_chart(rows: list[dict[str, Any]], target: Path) -> Path:
    """Draw one champion's rows to a PNG at `target` (the weekly report's `charts` renderer), the
    size of the figure."""
    html = file_html(weekly_figure(rows), resources=INLINE, title="ITFF weekly report")
    screenshot(html, target, element=FIGURE)
    return target
