"""Reports: the live-validation reports on file (`itff report daily|weekly|review`), newest first,
and the chosen one rendered; the validation log `daily_notes.md` is one of them."""

from __future__ import annotations

from pathlib import Path

import panel as pn

from panel_app.data import DashboardData
from panel_app.views.theme import empty_state

KINDS = ("daily", "weekly", "review")
NO_REPORTS = (
    "**No reports yet.** The scheduler writes the daily report at `ITFF_DAILY_REPORT_CRON` and the "
    "weekly one at `ITFF_WEEKLY_REPORT_CRON`; `itff report daily`, `weekly` and `review` write "
    "them by hand (docs/live-validation.md)."
)
NOTES = "validation log (daily_notes.md)"


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
        self.choice.param.watch(lambda _event: self._show(), "value")
        self.panel = pn.Column(self.empty, self.choice, self.body, sizing_mode="stretch_width")
        self._paths: dict[str, Path] = {}

    def update(self, _data: DashboardData) -> None:
        """List the files again (a glob of one folder per kind); keep the reader's choice."""
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
            self.body.object = path.read_text(encoding="utf-8")
        except OSError as exc:
            self.body.object = f"**Cannot read {path.name}:** {exc.strerror}"
