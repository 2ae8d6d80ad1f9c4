"""The operator documents: every relative link resolves (file and section). The commands, paths,
metrics and log lines they cite: `test_docs_drift.py`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.test_monitoring import slug

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [
    ROOT / "docs" / "deployment.md",
    ROOT / "docs" / "metrics.md",
    ROOT / "docs" / "live-validation.md",
    ROOT / "docs" / "threat-model.md",
    ROOT / "docs" / "release.md",
    ROOT / "deploy" / "rollback_checklist.md",
    ROOT / "CHANGELOG.md",
    *sorted((ROOT / "docs" / "runbooks").glob("*.md")),
]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("document", DOCUMENTS, ids=ids)
def test_relative_links_resolve(document: Path) -> None:
    text = document.read_text()
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (document.parent / path).resolve() if path else document
        assert resolved.exists(), f"{ids(document)}: link to {target} points nowhere"
        if anchor and resolved.suffix == ".md":
            headings = re.findall(r"^#+\s+(.*)$", resolved.read_text(), re.MULTILINE)
            assert anchor in {slug(h) for h in headings}, f"{ids(document)}: no #{anchor}"


def test_readme_deployment_section_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("<!-- deploy:start -->", 1)[1].split("<!-- deploy:end -->", 1)[0]
    targets = LINK.findall(section)
    assert len(targets) >= 5
    for target in targets:
        assert (ROOT / target.partition("#")[0]).exists(), f"README links to missing {target}"
