"""One browser session of the dashboard: a header with the window selector and seven tabs.

Each session refreshes itself on a periodic callback. The database is read in a worker thread, so a
slow query never blocks the server's event loop; the shared query cache means many sessions cost
the database one query per refresh period.
"""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Any

import panel as pn

from bot.contracts import ItffError, utcnow
from bot.runtime import get_logger
from panel_app.data import DashboardData, load
from panel_app.live_period import LivePeriod
from panel_app.queries import WINDOWS, DashboardQueries
from panel_app.views.equity import EquityView
from panel_app.views.latency import LatencyView
from panel_app.views.models import ModelsView
from panel_app.views.overview import OverviewView
from panel_app.views.pipeline import PipelineView
from panel_app.views.reports import ReportsView
from panel_app.views.signals import SignalsView
from panel_app.views.theme import LIVE_COLOR

log = get_logger(__name__)
TAB_NAMES = ("Overview", "Equity", "Signals", "Models", "Pipeline", "Latency", "Reports")


class Dashboard:
    """The components of one session and the refresh that fills them."""

    def __init__(
        self,
        queries: DashboardQueries,
        *,
        drift_margin: float,
        refresh_seconds: float,
        report_dir: Path = Path("reports"),
        live_period: LivePeriod | None = None,
    ) -> None:
        self.queries = queries
        self.live_period = live_period
        self.drift_margin = drift_margin
        self.refresh_seconds = refresh_seconds
        self.window = pn.widgets.RadioButtonGroup(
            options=list(WINDOWS), value="all", color="primary", width=240
        )
        self.status = pn.pane.Markdown("loading…", styles={"color": "#555"})
        self.problem = pn.pane.Alert(
            alert_type="danger", visible=False, sizing_mode="stretch_width"
        )
        self.overview = OverviewView(drift_margin=drift_margin)
        self.equity = EquityView()
        self.signals = SignalsView(on_filter=self.schedule_refresh)
        self.models = ModelsView()
        self.pipeline = PipelineView()
        self.latency = LatencyView()
        self.reports = ReportsView(report_dir)
        self.window.param.watch(lambda _event: self.schedule_refresh(), "value")
        self._lock = asyncio.Lock()
        self.document: Any = pn.state.curdoc

    def layout(self) -> pn.viewable.Viewable:
        tabs = pn.Tabs(
            *zip(TAB_NAMES, (view.panel for view in self._views()), strict=True),
            sizing_mode="stretch_width",
        )
        header = pn.Row(
            pn.pane.Markdown(f"## <span style='color:{LIVE_COLOR}'>ITFF</span> live vs backtest"),
            pn.Spacer(),
            pn.Column(pn.pane.Markdown("**Live window**", margin=(0, 5)), self.window),
            sizing_mode="stretch_width",
        )
        return pn.Column(header, self.status, self.problem, tabs, sizing_mode="stretch_width")

    def _views(self) -> tuple[Any, ...]:
        return (
            self.overview,
            self.equity,
            self.signals,
            self.models,
            self.pipeline,
            self.latency,
            self.reports,
        )

    def schedule_refresh(self) -> None:
        pn.state.execute(self.refresh)

    async def refresh(self) -> None:
        """Read in a worker thread, then update every view; errors show as a banner."""
        async with self._lock:
            try:
                data = await asyncio.to_thread(
                    load,
                    self.queries,
                    window=self.window.value,
                    drift_margin=self.drift_margin,
                    signal_filter=self.signals.selection(),
                    live_period=self.live_period,
                )
            except ItffError as exc:
                self.problem.object = f"**Cannot read the data:** {exc}"
                self.problem.visible = True
                log.warning("dashboard refresh failed", error=str(exc))
                return
            self._apply(data)

    def _apply(self, data: DashboardData) -> None:
        """Update the views under the document lock (Bokeh models may only change there)."""
        doc = self.document
        if doc is not None and doc.session_context is not None:
            doc.add_next_tick_callback(partial(self.show, data))
        else:
            self.show(data)

    def show(self, data: DashboardData) -> None:
        for view in self._views():
            view.update(data)
        self.problem.visible = False
        self.status.object = (
            f"Updated {utcnow():%Y-%m-%d %H:%M:%S} UTC · refreshes every "
            f"{self.refresh_seconds:g} s · read-only"
        )


def session(
    queries: DashboardQueries,
    *,
    drift_margin: float,
    refresh_seconds: float,
    report_dir: Path = Path("reports"),
    live_period: LivePeriod | None = None,
) -> pn.viewable.Viewable:
    """Build one session's page and start its periodic refresh (call inside a Panel session)."""
    dashboard = Dashboard(
        queries,
        drift_margin=drift_margin,
        refresh_seconds=refresh_seconds,
        report_dir=report_dir,
        live_period=live_period,
    )
    refresh: Any = dashboard.refresh  # Panel awaits coroutine functions; its stubs say otherwise
    pn.state.onload(refresh)
    pn.state.add_periodic_callback(refresh, period=int(refresh_seconds * 1000))
    return dashboard.layout()
