"""Pipeline: recent runs with status, duration, decisions and the path of their log."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import panel as pn

from panel_app.data import DashboardData
from panel_app.views.theme import (
    DECIMAL,
    DRIFT_COLOR,
    OK_COLOR,
    as_text,
    empty_state,
    refill,
    style_of,
    table,
)

COLUMNS = [
    "started_at",
    "run_id",
    "trigger",
    "status",
    "duration_s",
    "decisions",
    "counts",
    "error",
    "log_path",
]
NO_RUNS = (
    "**No pipeline runs yet.** Run `itff pipeline run` (or let `itff scheduler` run it daily); "
    "each run appears here with its decisions and log."
)
STATUS_COLOURS = {"succeeded": OK_COLOR, "failed": DRIFT_COLOR, "running": "#0072B2"}


def summarise(value: Any) -> str:
    """A JSON column in one line: `key: value` pairs, nested decisions shown compactly."""
    if not value:
        return ""
    if isinstance(value, dict):
        return "; ".join(f"{key}: {summarise(item)}" for key, item in value.items())
    if isinstance(value, list):
        return ", ".join(summarise(item) for item in value)
    return value if isinstance(value, str) else json.dumps(value, default=str)


def runs_frame(runs: pd.DataFrame) -> pd.DataFrame:
    out = as_text(runs, ["started_at"])
    out["decisions"] = [summarise(value) for value in out["decisions"]]
    out["counts"] = [summarise(value) for value in out["counts"]]
    out["error"] = out["error"].fillna("")
    out["log_path"] = out["log_path"].fillna("")
    return out[COLUMNS]


def _status_style(value: object) -> str:
    colour = STATUS_COLOURS.get(str(value))
    return f"color: {colour}; font-weight: 600" if colour else ""


class PipelineView:
    def __init__(self) -> None:
        self.table = table(
            pd.DataFrame(columns=COLUMNS),
            formatters={"duration_s": DECIMAL},
            titles={"duration_s": "duration (s)", "started_at": "started (UTC)", "log_path": "log"},
            widths={"decisions": 420, "counts": 260},
        )
        style_of(self.table).map(_status_style, subset=["status"])
        self.empty = empty_state(NO_RUNS)
        self.panel = pn.Column(self.empty, self.table, sizing_mode="stretch_width")

    def update(self, data: DashboardData) -> None:
        self.empty.visible = data.runs.empty
        self.table.visible = not data.runs.empty
        refill(self.table, runs_frame(data.runs))
