"""Number formats of the stored metrics, shared by the overview and the models tables."""

from __future__ import annotations

from typing import Any

from panel_app.compare import METRICS
from panel_app.views.theme import DECIMAL, INTEGER, PERCENT, PRECISE

FORMATS = {"rate": PERCENT, "ratio": DECIMAL, "error": PRECISE, "count": INTEGER}


def metric_formatters(suffixes: tuple[str, ...] = ("",)) -> dict[str, Any]:
    """Column name -> Bokeh number formatter for each metric (and each suffix, e.g. `_live`)."""
    return {
        f"{metric.name}{suffix}": FORMATS[metric.kind] for metric in METRICS for suffix in suffixes
    }
