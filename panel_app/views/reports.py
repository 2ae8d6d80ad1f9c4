"""Reports: the live-validation reports on file (`itff report daily|weekly|review`), newest first,
and the chosen one rendered with its images (the weekly charts, embedded:
`panel_app.report_images`); the validation log `daily_notes.md` is one of them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import panel as pn

from panel_app.data import DashboardData
from panel_app.report_images import embed_images
from panel_app.views.theme import empty_state

KINDS = ("daily", "weekly", "review")
NO_REPORTS = (
    "**No reports yet.** The scheduler writes the daily report at `ITFF_DAILY_REPORT_CRON` and the "
    "weekly one at `ITFF_WEEKLY_REPORT_CRON`; `itff report daily`, `weekly` and `review` write "
    "them by hand (docs/live-validation.md)."
)
NOTES = "validation log (daily_notes.md)"
PARITY_DAYS = 30  # daily reports read for the parity section
PARITY_COLUMNS = ("day", "model_key", "model_version", "bar_time", "signal_id", "problem")


@dataclass(frozen=True, slots=True)
class ParitySummary:
    """Live/backtest parity over the newest daily reports (`itff report daily`)."""

    days: int  # daily reports read (the newest PARITY_DAYS files)
    checked: int  # resolved signals the batch path recomputed
    mismatches: pd.DataFrame  # PARITY_COLUMNS, newest day first

    def text(self) -> str:
        if not self.days:
            return "**Parity:** no daily report yet (`itff report daily`)."
        count = len(self.mismatches)
        head = f"**Parity:** {count} mismatch(es) in {self.checked} resolved signals"
        tail = f" checked by the newest {self.days} daily report(s)"
        advice = " - run `itff report parity` and see docs/live-validation.md." if count else "."
        return head + tail + advice


def parity_summary(report_dir: Path, days: int = PARITY_DAYS) -> ParitySummary:
    """The parity section of the newest `days` daily reports (JSON); unreadable files skipped."""
    folder = report_dir / "live" / "daily"
    files = sorted(folder.glob("*.json"), reverse=True)[:days] if folder.is_dir() else []
    read, checked, rows = 0, 0, []
    for path in files:
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        read += 1
        checked += int(summary.get("parity_checked") or 0)
        rows += [
            {"day": path.stem, **{name: item.get(name) for name in PARITY_COLUMNS[1:]}}
            for item in summary.get("parity_mismatches") or []
        ]
    return ParitySummary(read, checked, pd.DataFrame(rows, columns=list(PARITY_COLUMNS)))


def list_reports(report_dir: Path) -> dict[str, Path]:
    """`{label: path}` of every Markdown report under `REPORT_DIR/live`, newest first per kind."""
    live = report_dir / "live"
    found: dict[str, Path] = {}
    if (live / "daily_notes.md").is_file():
        found[NOTES] = live / "daily_notes.md"
    for kind in KINDS:
        folder = live / kind
        if folder.is_dir():
            for path in sorted(folder.glob("*.md"), reverse=True):
                found[f"{kind} {path.stem}"] = path
    return found


class ReportsView:
    def __init__(self, report_dir: Path) -> None:
        self.report_dir = report_dir
        self.choice = pn.widgets.Select(label="Report", options=[], width=420)
        self.body = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.empty = empty_state(NO_REPORTS)
        self.parity = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.mismatches = pn.pane.DataFrame(
            pd.DataFrame(columns=list(PARITY_COLUMNS)), index=False, visible=False
        )
        self.choice.param.watch(lambda _event: self._show(), "value")
        self.panel = pn.Column(
            self.parity, self.mismatches, self.empty, self.choice, self.body,
            sizing_mode="stretch_width",
        )  # fmt: skip
        self._paths: dict[str, Path] = {}

    def update(self, _data: DashboardData) -> None:
        """List the files again (a glob of one folder per kind); keep the reader's choice."""
        parity = parity_summary(self.report_dir)
        self.parity.object = parity.text()
        self.mismatches.object = parity.mismatches
        self.mismatches.visible = not parity.mismatches.empty
        paths = list_reports(self.report_dir)
        if list(paths) != list(self._paths):
            self._paths = paths
            chosen = self.choice.value if self.choice.value in paths else next(iter(paths), None)
            self.choice.options = list(paths)
            self.choice.value = chosen
        self.empty.visible = not paths
        self.choice.visible = self.body.visible = bool(paths)
        self._show()

    def _show(self) -> None:
        path = self._paths.get(self.choice.value or "")
        if path is None:
            self.body.object = ""
            return
        try:
            text = path.read_text(encoding="utf-8")
            self.body.object = embed_images(text, path.parent, self.report_dir / "live")
        except OSError as exc:
            self.body.object = f"**Cannot read {path.name}:** {exc.strerror}"
