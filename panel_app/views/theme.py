"""Colours, number formats, tables and empty states shared by every view.

Live is always blue and backtest always orange (Okabe-Ito, safe for colour-blind readers), in the
overview table and in every chart.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
import panel as pn
from bokeh.models.widgets.tables import NumberFormatter

LIVE_COLOR = "#0072B2"
BACKTEST_COLOR = "#E69F00"
DRIFT_COLOR = "#D55E00"
OK_COLOR = "#009E73"
LIVE_PERIOD_COLOR = "#009E73"  # the batch path over the live bars
PERCENTILE_COLORS = {"p50": "#0072B2", "p95": "#CC79A7", "p99": "#D55E00"}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DATE_FORMAT = "%Y-%m-%d"

PERCENT = NumberFormatter(format="0.00%", nan_format="-")
DECIMAL = NumberFormatter(format="0.00", nan_format="-")
PRECISE = NumberFormatter(format="0.0000", nan_format="-")
INTEGER = NumberFormatter(format="0,0", nan_format="-")


def as_text(frame: pd.DataFrame, columns: Iterable[str], fmt: str = TIME_FORMAT) -> pd.DataFrame:
    """Datetimes as fixed-width UTC text: readable, sortable, identical in every browser."""
    out = frame.copy()
    for name in columns:
        out[name] = out[name].dt.strftime(fmt).fillna("-")
    return out


def table(frame: pd.DataFrame, **options: Any) -> pn.widgets.Tabulator:
    """A read-only, paginated table."""
    defaults: dict[str, Any] = {
        "disabled": True,
        "show_index": False,
        "pagination": "local",
        "page_size": 25,
        "sizing_mode": "stretch_width",
        "layout": "fit_data_table",
        "header_align": "center",
    }
    return pn.widgets.Tabulator(frame, **(defaults | options))


def empty_state(message: str) -> pn.pane.Alert:
    """What is missing and the command that fills it."""
    return pn.pane.Alert(message, alert_type="info", sizing_mode="stretch_width")


def style_of(widget: pn.widgets.Tabulator) -> Any:
    """The table's pandas Styler; functions applied to it survive later value updates."""
    return widget.style


def refill(widget: pn.widgets.Tabulator, frame: pd.DataFrame) -> None:
    """Replace a table's rows only when they changed, so a refresh keeps the reader's page."""
    current = widget.value
    if isinstance(current, pd.DataFrame) and current.equals(frame):
        return
    widget.value = frame
