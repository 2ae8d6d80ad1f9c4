"""deploy/artifacts.manifest.json, the example manifest of docs/deployment.md, is a real one: the
registry's own reader parses and authenticates it with the documented example public key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.artifacts import MANIFEST_FILE, ArtifactIntegrityError, Verifier, read_manifest
from tests.support.keys import OTHER_PUBLIC_KEY

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "artifacts.manifest.json"
EXAMPLE_KEY = "ed25519pk_KFhg7IVIsDjkQTck9EmwThFpvZ5bIGooFRQDj-41r2o"  # tests.support.keys


def test_example_manifest_verifies_with_the_example_key(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / MANIFEST_FILE)
    manifest = read_manifest(tmp_path, None, None, Verifier.of([EXAMPLE_KEY]), label="example")
    assert manifest.signed
    assert manifest.key == "SPX-direction-logreg"
    assert set(manifest.files) == {"meta.json", "model.joblib"}
    assert EXAMPLE_KEY in (ROOT / "docs" / "deployment.md").read_text()


def test_example_manifest_is_refused_with_another_key(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / MANIFEST_FILE)
    with pytest.raises(ArtifactIntegrityError, match="signature"):
        read_manifest(tmp_path, None, None, Verifier.of([OTHER_PUBLIC_KEY]), label="example")
