"""Signals: the latest signals, filterable by symbol, model and action, refreshed in place."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import panel as pn

from panel_app.data import DashboardData, SignalFilter
from panel_app.queries import SIGNAL_LIMIT
from panel_app.views.theme import DECIMAL, PRECISE, as_text, empty_state, refill, style_of, table

ACTIONS = ["buy", "sell", "hold"]
COLUMNS = [
    "emitted_at",
    "symbol",
    "interval",
    "bar_time",
    "model_key",
    "model_version",
    "action",
    "prediction",
    "probability",
    "ood",
    "latency_ms",
    "alert_id",
]
NO_SIGNALS = (
    "**No signals yet.** Send an alert to the webhook or run "
    "`itff replay data/sample/SPX_1d.csv`; signals appear here within one refresh."
)
NO_MATCH = "**No signal matches these filters.** Clear a filter to see more."


def _action_style(value: object) -> str:
    colours = {"buy": "#009E73", "sell": "#D55E00"}
    colour = colours.get(str(value))
    return f"color: {colour}; font-weight: 600" if colour else ""


class SignalsView:
    def __init__(self, on_filter: Callable[[], object]) -> None:
        self.symbols = pn.widgets.MultiChoice(label="Symbol", options=[], width=220)
        self.model_keys = pn.widgets.MultiChoice(label="Model", options=[], width=360)
        self.actions = pn.widgets.MultiChoice(label="Action", options=ACTIONS, width=220)
        self.page = pn.widgets.IntInput(label="Page (newest first)", value=1, start=1, width=140)
        for widget in (self.symbols, self.model_keys, self.actions, self.page):
            widget.param.watch(lambda _event: on_filter(), "value")
        self.table = table(
            pd.DataFrame(columns=COLUMNS),
            formatters={"prediction": PRECISE, "probability": PRECISE, "latency_ms": DECIMAL},
            titles={
                "latency_ms": "latency (ms)",
                "emitted_at": "emitted (UTC)",
                "bar_time": "bar (UTC)",
            },
        )
        style_of(self.table).map(_action_style, subset=["action"])
        self.caption = pn.pane.Markdown(sizing_mode="stretch_width")
        self.no_signals = empty_state(NO_SIGNALS)
        self.no_match = empty_state(NO_MATCH)
        self.panel = pn.Column(
            pn.Row(self.symbols, self.model_keys, self.actions, self.page),
            self.caption,
            self.no_signals,
            self.no_match,
            self.table,
            sizing_mode="stretch_width",
        )

    def selection(self) -> SignalFilter:
        return SignalFilter(
            symbols=tuple(self.symbols.value),
            model_keys=tuple(self.model_keys.value),
            actions=tuple(self.actions.value),
            page=max(int(self.page.value or 1), 1) - 1,
        )

    def update(self, data: DashboardData) -> None:
        self.symbols.options = data.signal_choices["symbols"]
        self.model_keys.options = data.signal_choices["model_keys"]
        anything = bool(data.signal_choices["symbols"])
        self.no_signals.visible = not anything
        self.no_match.visible = anything and data.signals.empty
        self.table.visible = not data.signals.empty
        refill(self.table, as_text(data.signals[COLUMNS], ["emitted_at", "bar_time"]))
        page = int(self.page.value or 1)
        self.caption.object = (
            f"Latest {len(data.signals)} signals (page {page}, {SIGNAL_LIMIT} a page), "
            "newest first, refreshed automatically."
            if anything
            else ""
        )
