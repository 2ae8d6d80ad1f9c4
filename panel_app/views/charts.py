"""Bokeh figures for the equity and latency views and the snapshot, fed by ColumnDataSources.

Updating a source's `data` redraws a chart in the browser without rebuilding it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from bokeh.models import ColumnDataSource, DatetimeTickFormatter, HoverTool, NumeralTickFormatter
from bokeh.plotting import figure

from panel_app.series import EquityPair
from panel_app.views.theme import (
    BACKTEST_COLOR,
    LIVE_COLOR,
    LIVE_PERIOD_COLOR,
    PERCENTILE_COLORS,
)

EMPTY_CURVE: dict[str, Any] = {"time": [], "equity": [], "drawdown": []}
EMPTY_LATENCY: dict[str, Any] = {"time": [], "p50": [], "p95": [], "p99": [], "n": []}


def _naive(times: pd.Series) -> list[Any]:
    """Bokeh draws datetimes as naive UTC."""
    return list(pd.to_datetime(times, utc=True).dt.tz_localize(None))


def refill(source: ColumnDataSource, data: dict[str, Any]) -> None:
    """Send new data to the browser only when it changed (a redraw resets nothing needlessly)."""
    if dict(source.data) != data:
        source.data = data


def curve_data(frame: pd.DataFrame) -> dict[str, Any]:
    if frame.empty:
        return {key: [] for key in EMPTY_CURVE}
    return {
        "time": _naive(frame["time"]),
        "equity": frame["equity"].tolist(),
        "drawdown": frame["drawdown"].tolist(),
    }


def latency_data(frame: pd.DataFrame) -> dict[str, Any]:
    if frame.empty:
        return {key: [] for key in EMPTY_LATENCY}
    data = {name: frame[name].astype(float).tolist() for name in ("p50", "p95", "p99", "n")}
    return {"time": _naive(frame["time"]), **data}


class EquityChart:
    """Equity of live signals over the backtest's (top) and both drawdowns (bottom)."""

    def __init__(self, *, height: int = 320) -> None:
        self.live = ColumnDataSource(dict(EMPTY_CURVE))
        self.backtest = ColumnDataSource(dict(EMPTY_CURVE))
        self.live_period = ColumnDataSource(dict(EMPTY_CURVE))
        self.equity = figure(
            x_axis_type="datetime", height=height, sizing_mode="stretch_width", title="Equity"
        )
        self.drawdown = figure(
            x_axis_type="datetime",
            height=height // 2,
            sizing_mode="stretch_width",
            title="Drawdown",
            x_range=self.equity.x_range,
        )
        self.equity.line(
            "time", "equity", source=self.live_period, color=LIVE_PERIOD_COLOR, line_width=2,
            line_dash="dashed", legend_label="backtest on the live period",
        )  # fmt: skip
        for source, colour, label in (
            (self.backtest, BACKTEST_COLOR, "backtest"),
            (self.live, LIVE_COLOR, "live"),
        ):
            self.equity.line(
                "time", "equity", source=source, color=colour, line_width=2, legend_label=label
            )
            self.drawdown.varea(
                x="time",
                y1=0,
                y2="drawdown",
                source=source,
                fill_color=colour,
                fill_alpha=0.35,
                legend_label=label,
            )
        self._style()

    def _style(self) -> None:
        self.equity.yaxis.formatter = NumeralTickFormatter(format="0.00")
        self.equity.yaxis.axis_label = "growth of 1"
        self.drawdown.yaxis.formatter = NumeralTickFormatter(format="0.0%")
        for chart in (self.equity, self.drawdown):
            chart.legend.location = "top_left"
            chart.toolbar.logo = None
        self.equity.add_tools(
            HoverTool(
                tooltips=[("time", "@time{%F}"), ("equity", "@equity{0.000}")],
                formatters={"@time": "datetime"},
            )
        )

    def show(self, pair: EquityPair | None) -> None:
        refill(self.live, curve_data(pair.live) if pair else dict(EMPTY_CURVE))
        refill(self.backtest, curve_data(pair.backtest) if pair else dict(EMPTY_CURVE))
        refill(self.live_period, curve_data(pair.live_period) if pair else dict(EMPTY_CURVE))
        title: Any = self.equity.title
        title.text = f"Equity: {pair.model_key} ({pair.backtest_note})" if pair else "Equity"


class LatencyChart:
    """End-to-end signal latency percentiles per time bucket."""

    def __init__(self, *, height: int = 320) -> None:
        self.source = ColumnDataSource(dict(EMPTY_LATENCY))
        self.figure = figure(
            x_axis_type="datetime",
            height=height,
            sizing_mode="stretch_width",
            title="Signal latency (receipt to emission)",
        )
        for name, colour in PERCENTILE_COLORS.items():
            self.figure.line(
                "time", name, source=self.source, color=colour, line_width=2, legend_label=name
            )
            self.figure.scatter("time", name, source=self.source, color=colour, size=4)
        self.figure.xaxis.formatter = DatetimeTickFormatter(
            microseconds="%H:%M:%S.%3N",
            milliseconds="%H:%M:%S.%3N",
            seconds="%H:%M:%S",
            minsec="%H:%M:%S",
            minutes="%H:%M",
            hourmin="%H:%M",
            hours="%H:%M",
            days="%Y-%m-%d",
        )
        self.figure.yaxis.axis_label = "ms"
        self.figure.legend.location = "top_left"
        self.figure.toolbar.logo = None
        self.figure.add_tools(
            HoverTool(
                tooltips=[
                    ("bucket", "@time{%F %T}"),
                    ("p50", "@p50{0.0} ms"),
                    ("p95", "@p95{0.0} ms"),
                    ("p99", "@p99{0.0} ms"),
                    ("signals", "@n{0,0}"),
                ],
                formatters={"@time": "datetime"},
            )
        )

    def show(self, percentiles: pd.DataFrame) -> None:
        refill(self.source, latency_data(percentiles))
