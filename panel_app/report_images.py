"""The images of a report on the Reports tab: the weekly report links its PNG charts relatively
(`2026-W49/SPX-direction-logreg.png`), which a browser could only fetch from a route of its own.
They are embedded instead, as `data:` URIs in the Markdown the session sends, so they travel
through the authenticated session like the text. Pure but for reading the files.

Only PNG files inside the reports folder are embedded: a link that leaves it (`..`, an absolute
path, a symbolic link pointing out), a URL, another type, a missing or oversized file shows as a
short note instead.
"""

from __future__ import annotations

import base64
import re
from functools import lru_cache
from pathlib import Path

MAX_IMAGE_BYTES = 5 * 1024 * 1024
IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def embed_images(markdown: str, folder: Path, root: Path) -> str:
    """`markdown` (a report read from `folder`) with each relative PNG link under `root` replaced
    by the image itself; any other image link by a note saying why it is not shown."""
    base, top = folder.resolve(), root.resolve()

    def replace(found: re.Match[str]) -> str:
        alt, target = found["alt"], found["target"]
        reason = _refusal(target, base, top)
        if reason is not None:
            return f"*(image {alt or target!r} not shown: {reason})*"
        path = (base / target).resolve()
        stat = path.stat()
        return f"![{alt}]({_data_uri(str(path), stat.st_mtime_ns, stat.st_size)})"

    return IMAGE.sub(replace, markdown)


def _refusal(target: str, base: Path, top: Path) -> str | None:
    """Why the link `target` (relative to `base`) is not embedded; None when it is."""
    if SCHEME.match(target) or target.startswith(("/", "\\")):
        return "only images of the reports folder are shown"
    path = (base / target).resolve()
    if not path.is_relative_to(top):
        return "it is outside the reports folder"
    if path.suffix.lower() != ".png":
        return "only PNG images are shown"
    if not path.is_file():
        return "the file is missing"
    if path.stat().st_size > MAX_IMAGE_BYTES:
        return f"larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB"
    return None


@lru_cache(maxsize=64)
def _data_uri(path: str, _mtime_ns: int, _size: int) -> str:
    """The file as a data URI; cached per version of the file (every refresh shows it again)."""
    encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{encoded}"
