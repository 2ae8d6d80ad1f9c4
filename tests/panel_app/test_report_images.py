"""The Reports tab embeds a report's PNG images from the reports folder, and nothing else: real
files, links that try to leave the folder, and the Markdown the tab renders."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from PIL import Image

from panel_app import report_images
from panel_app.report_images import embed_images


def _png(path: Path, colour: str = "red") -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 4), colour).save(path)
    return path.read_bytes()


@pytest.fixture
def live(tmp_path: Path) -> Path:
    folder = tmp_path / "reports" / "live"
    (folder / "weekly").mkdir(parents=True)
    return folder


def _embedded(markdown: str) -> bytes:
    prefix = "](data:image/png;base64,"
    assert prefix in markdown, markdown
    return base64.b64decode(markdown.split(prefix, 1)[1].split(")", 1)[0])


def test_a_chart_beside_the_report_is_embedded(live: Path) -> None:
    raw = _png(live / "weekly" / "2026-W49" / "SPX-direction-logreg.png")
    text = "# Weekly\n\n![SPX-direction-logreg](2026-W49/SPX-direction-logreg.png)\n\nafter\n"
    shown = embed_images(text, live / "weekly", live)
    assert shown.startswith("# Weekly\n\n![SPX-direction-logreg](data:image/png;base64,")
    assert shown.endswith(")\n\nafter\n")
    assert _embedded(shown) == raw


def test_a_changed_chart_is_read_again(live: Path) -> None:
    path = live / "weekly" / "2026-W49" / "chart.png"
    _png(path, "red")
    first = _embedded(embed_images("![c](2026-W49/chart.png)", live / "weekly", live))
    Image.new("RGB", (9, 4), "blue").save(path)  # another size: another st_size, mtime or not
    second_raw = path.read_bytes()
    second = _embedded(embed_images("![c](2026-W49/chart.png)", live / "weekly", live))
    assert first != second == second_raw


@pytest.mark.parametrize(
    ("link", "reason"),
    [
        ("../../secret.png", "it is outside the reports folder"),
        ("2026-W49/../../../secret.png", "it is outside the reports folder"),
        ("escape.png", "it is outside the reports folder"),  # a symbolic link pointing out
        ("/etc/hostname", "only images of the reports folder are shown"),
        ("file:///etc/hostname", "only images of the reports folder are shown"),
        ("https://example.invalid/x.png", "only images of the reports folder are shown"),
        ("notes.txt", "only PNG images are shown"),
        ("2026-W49/gone.png", "the file is missing"),
    ],
)
def test_links_that_leave_the_folder_or_are_not_pngs_are_refused(
    live: Path, link: str, reason: str
) -> None:
    secret = live.parents[1] / "secret.png"
    _png(secret)
    (live / "weekly" / "escape.png").symlink_to(secret)
    (live / "weekly" / "notes.txt").write_text("not an image")
    shown = embed_images(f"before ![x]({link}) after", live / "weekly", live)
    assert shown == f"before *(image 'x' not shown: {reason})* after"
    assert "data:" not in shown


def test_an_oversized_image_is_refused(live: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _png(live / "weekly" / "big.png")
    monkeypatch.setattr(report_images, "MAX_IMAGE_BYTES", len(raw) - 1)
    shown = embed_images("![big](big.png)", live / "weekly", live)
    assert "not shown: larger than" in shown
