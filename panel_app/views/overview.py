"""Overview: one row per champion, live next to backtest for each metric, the drift flag and the
comparison it used (the backtest on the live period once it covers 20 bars, the stored one
otherwise)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn

from panel_app.compare import (
    METRICS,
    OVERVIEW_COLUMNS,
    SOURCES,
    WITHIN_MARGIN,
    Metric,
    column,
)
from panel_app.data import DashboardData
from panel_app.live_period import LIVE_PERIOD_COLUMNS
from panel_app.views.compare_format import metric_formatters
from panel_app.views.theme import (
    BACKTEST_COLOR,
    DRIFT_COLOR,
    LIVE_COLOR,
    OK_COLOR,
    empty_state,
    refill,
    style_of,
    table,
)

SAME_PERIOD_NOTE = (
    "**Backtest on the live period**: the batch path's positions over exactly each champion's "
    "live bars, with costs, beside live on the same bars (`_live` / `_batch`). The verdict here "
    "and the Drift column above compare them when there are at least 20 bars, live with the "
    "stored backtest otherwise; *Compared with* says which."
)
NO_MODELS = (
    "**No champion models yet.** Train and promote the sample models with `itff train` or "
    "`itff pipeline run`; this table then shows each champion's live and backtest metrics."
)


def _formatters() -> dict[str, Any]:
    wrapped = {"drift": {"type": "textarea"}, "comparison": {"type": "textarea"}}
    return wrapped | metric_formatters(tuple(f"_{source}" for source in SOURCES))


def _titles(margin: float) -> dict[str, str]:
    titles = {"model_key": "Model", "version": "Version"}
    titles |= {column(m, s): s for m in METRICS for s in SOURCES}
    titles["drift"] = f"Drift (margin {100 * margin:.0f} pp)"
    titles["comparison"] = "Compared with"
    return titles


def _groups() -> dict[str, list[str]]:
    return {metric.label: [column(metric, s) for s in SOURCES] for metric in METRICS}


def _colour(frame: pd.DataFrame) -> pd.DataFrame:
    """Cell styles: live values blue, backtest values orange, a drifting model's flag red, a
    judged one within the margin green (not judged, or no snapshot yet: plain).

    The flag is not bold: Tabulator sizes a row before the style applies, so a bolder (wider)
    text would wrap onto lines the row has no room for."""
    styles = pd.DataFrame("", index=frame.index, columns=frame.columns)
    for metric in METRICS:
        styles[column(metric, "live")] = f"color: {LIVE_COLOR}; font-weight: 600"
        styles[column(metric, "backtest")] = f"color: {BACKTEST_COLOR}"
    styles["drift"] = [
        f"color: {DRIFT_COLOR}" if flag else f"color: {OK_COLOR}" if text == WITHIN_MARGIN else ""
        for flag, text in zip(frame["drifting"], frame["drift"], strict=True)
    ]
    return styles


def styled(frame: pd.DataFrame) -> Any:
    """The overview as a coloured pandas Styler (the snapshot renders it as HTML)."""
    return frame.style.apply(_colour, axis=None)


class OverviewView:
    def __init__(self, *, drift_margin: float) -> None:
        self.table = table(
            pd.DataFrame(columns=list(OVERVIEW_COLUMNS)),
            formatters=_formatters(),
            titles=_titles(drift_margin),
            groups=_groups(),
            hidden_columns=["drifting"],
            frozen_columns=["model_key"],
            # the Models tab shows versions in full
            widths={"drift": 230, "comparison": 170, "version": 120},
            pagination=None,
        )
        style_of(self.table).apply(
            _colour, axis=None
        )  # Tabulator keeps the style across value updates
        self.empty = empty_state(NO_MODELS)
        self.drift_note = pn.pane.Markdown(sizing_mode="stretch_width")
        self.same_note = pn.pane.Markdown(SAME_PERIOD_NOTE, sizing_mode="stretch_width")
        self.same_period = pn.pane.DataFrame(
            pd.DataFrame(columns=list(LIVE_PERIOD_COLUMNS)),
            index=False,
            float_format="{:.3f}".format,
            na_rep="-",
        )
        self.panel = pn.Column(
            self.drift_note, self.empty, self.table, self.same_note, self.same_period,
            sizing_mode="stretch_width",
        )  # fmt: skip

    def update(self, data: DashboardData) -> None:
        frame = data.overview
        self.empty.visible = frame.empty
        self.table.visible = not frame.empty
        refill(self.table, frame)
        self.drift_note.object = _summary(frame, data.window)
        same = data.same_period.table
        self.same_period.object = same
        self.same_note.visible = self.same_period.visible = not same.empty


def _summary(frame: pd.DataFrame, window: str) -> str:
    if frame.empty:
        return ""
    drifting = frame[frame["drifting"]]["model_key"].tolist()
    live = sum(frame[column(_count(), "live")].notna())
    head = (
        f"**{len(frame)} champion models**, {live} with live metrics over **{window}**. "
        f"<span style='color:{LIVE_COLOR}'>■ live</span> "
        f"<span style='color:{BACKTEST_COLOR}'>■ backtest (out-of-sample)</span>"
    )
    if drifting:
        flagged = ", ".join(drifting)
        return f"{head}<br><span style='color:{DRIFT_COLOR}'>⚠ drifting: {flagged}</span>"
    return head


def _count() -> Metric:
    return next(metric for metric in METRICS if metric.kind == "count")
