"""Equity: following each champion's live signals, drawn over its backtest curve, with drawdowns."""

from __future__ import annotations

import panel as pn

from panel_app.data import DashboardData
from panel_app.series import EquityPair
from panel_app.views.charts import EquityChart
from panel_app.views.theme import empty_state

NO_MODELS = (
    "**No champion models yet**, so there is no backtest curve to compare with. "
    "Run `itff train` or `itff pipeline run`."
)
NO_OUTCOMES = (
    "**No resolved live signals yet** for this model over the selected window: the orange backtest "
    "curve is drawn alone. Signals resolve one horizon after their bar; send alerts or run "
    "`itff replay data/sample/SPX_1d.csv`."
)


def final_return(pair: EquityPair) -> str:
    def last(frame_equity: list[float]) -> str:
        return f"{frame_equity[-1] - 1:+.2%}" if frame_equity else "n/a"

    text = (
        f"live {last(pair.live['equity'].tolist())} over {len(pair.live)} bars, "
        f"backtest {last(pair.backtest['equity'].tolist())} over {len(pair.backtest)} bars"
    )
    if pair.live_period.empty:
        return text
    batch = pair.live_period["equity"].tolist()
    return f"{text}, backtest on the live period {last(batch)} over {len(batch)} bars"


class EquityView:
    def __init__(self) -> None:
        self.model = pn.widgets.Select(label="Model", options=[], width=320)
        self.chart = EquityChart()
        self.summary = pn.pane.Markdown(sizing_mode="stretch_width")
        self.no_models = empty_state(NO_MODELS)
        self.no_outcomes = empty_state(NO_OUTCOMES)
        self._pairs: dict[str, EquityPair] = {}
        self.model.param.watch(lambda _event: self._draw(), "value")
        self.panel = pn.Column(
            self.model,
            self.no_models,
            self.no_outcomes,
            self.summary,
            pn.pane.Bokeh(self.chart.equity, sizing_mode="stretch_width"),
            pn.pane.Bokeh(self.chart.drawdown, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )

    def update(self, data: DashboardData) -> None:
        self._pairs = {pair.model_key: pair for pair in data.equity}
        keys = list(self._pairs)
        if self.model.options != keys:
            self.model.options = keys
        if self.model.value not in keys:
            self.model.value = keys[0] if keys else None
        self.no_models.visible = not keys
        self._draw()

    def _draw(self) -> None:
        pair = self._pairs.get(self.model.value) if self.model.value else None
        self.chart.show(pair)
        self.no_outcomes.visible = pair is not None and pair.live.empty
        self.summary.object = (
            f"**{pair.model_key}**: {final_return(pair)} ({pair.backtest_note})" if pair else ""
        )
