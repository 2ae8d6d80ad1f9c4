"""Latency: end-to-end signal latency p50/p95/p99 over time, from the stored `latency_ms`."""

from __future__ import annotations

import panel as pn

from panel_app.data import DashboardData
from panel_app.series import latency_percentiles, latency_summary
from panel_app.views.charts import LatencyChart
from panel_app.views.theme import PERCENTILE_COLORS, empty_state

NO_SIGNALS = (
    "**No signals in this window yet**, so no latency to show. Send an alert or run "
    "`itff replay data/sample/SPX_1d.csv`."
)


def summary_text(data: DashboardData) -> str:
    figures = latency_summary(data.latencies)
    if not figures:
        return ""
    parts = [
        f"<b style='color:{PERCENTILE_COLORS[name]}'>{name} {figures[name]:,.1f} ms</b>"
        for name in ("p50", "p95", "p99")
    ]
    return f"Over {data.window}: {' · '.join(parts)} across {figures['n']:,.0f} signals"


class LatencyView:
    def __init__(self) -> None:
        self.chart = LatencyChart()
        self.summary = pn.pane.Markdown(sizing_mode="stretch_width")
        self.empty = empty_state(NO_SIGNALS)
        self.panel = pn.Column(
            self.summary,
            self.empty,
            pn.pane.Bokeh(self.chart.figure, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )

    def update(self, data: DashboardData) -> None:
        self.empty.visible = data.latencies.empty
        self.summary.object = summary_text(data)
        self.chart.show(latency_percentiles(data.latencies))
