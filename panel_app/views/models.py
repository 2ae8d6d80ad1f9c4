"""Models: every version per key with status, checksum, training window, metrics, verification."""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn

from panel_app.compare import METRICS
from panel_app.data import DashboardData
from panel_app.views.compare_format import metric_formatters
from panel_app.views.theme import (
    DATE_FORMAT,
    DRIFT_COLOR,
    OK_COLOR,
    as_text,
    empty_state,
    refill,
    style_of,
    table,
)

VERSION_COLUMNS = [
    "model_key",
    "version",
    "status",
    "sha256",
    "train_start",
    "train_end",
    *(metric.name for metric in METRICS),
    "verified",
    "last_verified_at",
    "created_at",
    "promoted_at",
]
EVENT_COLUMNS = ["at", "model_key", "event", "version", "previous_version", "reason"]
NO_MODELS = "**No models yet.** Run `itff train` or `itff pipeline run` to train and publish them."
NO_EVENTS = "**No promotions yet.** The pipeline records every champion change here."
STATUS_COLOURS = {"champion": OK_COLOR, "retired": "#777777", "pruned": "#999999"}


def verification_text(ok: object) -> str:
    if ok is None or (isinstance(ok, float) and pd.isna(ok)):
        return "not verified yet"
    return "ok" if bool(ok) else "FAILED"


def versions_frame(versions: pd.DataFrame) -> pd.DataFrame:
    """One row per version with its out-of-sample metrics spread into columns."""
    out = versions.copy()
    for metric in METRICS:
        out[metric.name] = [metric.read(m) for m in out["metrics"]] if len(out) else []
    out["verified"] = [verification_text(ok) for ok in out["verification_ok"]]
    out = as_text(out, ["last_verified_at", "created_at", "promoted_at"])
    out = as_text(out, ["train_start", "train_end"], DATE_FORMAT)
    return out[VERSION_COLUMNS]


def _status_style(value: object) -> str:
    colour = STATUS_COLOURS.get(str(value))
    return f"color: {colour}; font-weight: 600" if colour else ""


def _verified_style(value: object) -> str:
    return f"color: {DRIFT_COLOR}; font-weight: 700" if value == "FAILED" else ""


class ModelsView:
    def __init__(self) -> None:
        formatters: dict[str, Any] = metric_formatters()
        self.versions = table(
            pd.DataFrame(columns=VERSION_COLUMNS),
            formatters=formatters,
            groupby=["model_key"],
            titles={"sha256": "SHA-256"},
        )
        style_of(self.versions).map(_status_style, subset=["status"]).map(
            _verified_style, subset=["verified"]
        )
        self.events = table(pd.DataFrame(columns=EVENT_COLUMNS), page_size=15)
        self.no_models = empty_state(NO_MODELS)
        self.no_events = empty_state(NO_EVENTS)
        self.panel = pn.Column(
            pn.pane.Markdown("### Versions (out-of-sample metrics)"),
            self.no_models,
            self.versions,
            pn.pane.Markdown("### Promotion history"),
            self.no_events,
            self.events,
            sizing_mode="stretch_width",
        )

    def update(self, data: DashboardData) -> None:
        self.no_models.visible = data.versions.empty
        self.versions.visible = not data.versions.empty
        refill(self.versions, versions_frame(data.versions))
        self.no_events.visible = data.events.empty
        self.events.visible = not data.events.empty
        refill(self.events, as_text(data.events, ["at"])[EVENT_COLUMNS])
