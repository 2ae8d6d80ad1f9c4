"""The artifact registry: verified loads, atomic publish, champion pointer, rollback and prune."""

from __future__ import annotations

import io
import json
import math
import re
import threading
import time
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

import bot.artifacts.registry as artifacts_module
from bot.artifacts import (
    ArtifactRegistry,
    Signer,
    legacy_hmac_signature,
    make_manifest,
    meta_of,
    registry_from_settings,
)
from bot.artifacts.format import canonical
from bot.artifacts.pointers import make_pointer
from bot.contracts import BadInput, ConfigError, IntegrityError, NotFound, Settings
from tests.support.bundles import SideEffect, make_bundle, training_inputs
from tests.support.keys import OTHER_PUBLIC_KEY, OTHER_SIGNING_KEY, PUBLIC_KEY, SIGNING_KEY

KEY = "SPX-direction-logreg"
LEGACY_HMAC_KEY = b"0123456789abcdef-test-signing-key"
V1, V2, V3, V4 = (f"20260101T00000{i}Z-000{i}" for i in range(1, 5))


@pytest.fixture
def registry(tmp_path: Path) -> ArtifactRegistry:
    return ArtifactRegistry(tmp_path / "artifacts", signing_key=SIGNING_KEY)


def flip_byte(path: Path, offset: int = -20) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def evil_pickle(marker: Path) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(SideEffect(str(marker)), buffer)
    return buffer.getvalue()


def test_publish_then_load_round_trips_the_whole_bundle(registry: ArtifactRegistry) -> None:
    bundle = make_bundle(version=V1)
    published = registry.publish(bundle)
    assert published.path == registry.root / KEY / V1
    assert sorted(p.name for p in published.path.iterdir()) == [
        "manifest.json",
        "meta.json",
        "model.joblib",
        "model.linear.json",  # the compiled serving form (logreg: plain arrays)
        "serving.json",
    ]
    loaded = registry.load(KEY, V1)
    X = training_inputs(2, 3, seed=7, n=20)
    np.testing.assert_array_equal(
        loaded.pipeline.predict_proba(X), bundle.pipeline.predict_proba(X)
    )
    np.testing.assert_array_equal(loaded.ood.precision, bundle.ood.precision)
    np.testing.assert_array_equal(loaded.ood.mean, bundle.ood.mean)
    assert loaded.ood.threshold == bundle.ood.threshold
    assert (loaded.key, loaded.version, loaded.thresholds) == (KEY, V1, bundle.thresholds)
    assert loaded.feature_names == bundle.feature_names
    assert (loaded.lookback, loaded.horizon, loaded.interval) == (2, 1, "1D")
    assert (loaded.train_start, loaded.train_end) == (bundle.train_start, bundle.train_end)
    assert loaded.metrics["accuracy"] == 0.61
    assert math.isnan(loaded.metrics["roc_auc"] or 0.0)
    assert loaded.metrics["sharpe"] is None
    assert loaded.library_versions["trained_by"] == "tests"
    assert "scikit-learn" in loaded.library_versions


def test_manifest_records_sha256_of_every_file_and_a_signature(registry: ArtifactRegistry) -> None:
    import hashlib

    folder = registry.publish(make_bundle(version=V1)).path
    manifest = json.loads((folder / "manifest.json").read_text())
    for name in ("meta.json", "model.joblib"):
        assert (
            manifest["files"][name]["sha256"]
            == hashlib.sha256((folder / name).read_bytes()).hexdigest()
        )
    assert manifest["signature"]["algorithm"] == "Ed25519"
    assert (manifest["key"], manifest["version"]) == (KEY, V1)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["input_names"][0] == "ret_1@t-1"
    assert meta["input_names"][-1] == "rsi_14@t"


def test_publishing_an_existing_version_is_refused(registry: ArtifactRegistry) -> None:
    registry.publish(make_bundle(version=V1))
    with pytest.raises(BadInput, match="immutable"):
        registry.publish(make_bundle(version=V1, seed=3))


def test_a_pipeline_without_its_scaler_is_never_published(registry: ArtifactRegistry) -> None:
    import dataclasses

    bundle = make_bundle(version=V1, pipeline=Pipeline([("model", LogisticRegression())]))
    with pytest.raises(BadInput, match="no scaler: its first step 'model' is LogisticRegression"):
        registry.publish(bundle)
    bare = dataclasses.replace(bundle, pipeline=bundle.pipeline.steps[0][1])
    with pytest.raises(BadInput, match="not a scikit-learn Pipeline"):
        registry.publish(bare)
    no_scaler = Pipeline([("pca", _Passthrough()), ("model", LogisticRegression())])
    with pytest.raises(BadInput, match="no scaler"):
        registry.publish(make_bundle(version=V2, pipeline=no_scaler))
    assert registry.keys() == []


@pytest.mark.parametrize("name", ["meta.json", "model.joblib"])
def test_a_flipped_byte_is_refused_naming_the_file(registry: ArtifactRegistry, name: str) -> None:
    folder = registry.publish(make_bundle(version=V1)).path
    flip_byte(folder / name)
    with pytest.raises(IntegrityError, match=rf"{KEY}/{V1}/{re.escape(name)}: SHA-256 mismatch"):
        registry.load(KEY, V1)
    [result] = registry.verify()
    assert (result.ok, result.file) == (False, name)


def test_a_tampered_model_is_never_unpickled(registry: ArtifactRegistry, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    payload = evil_pickle(marker)
    joblib.load(io.BytesIO(payload))  # the payload really has a side effect ...
    assert marker.exists()
    marker.rmdir()
    folder = registry.publish(make_bundle(version=V1)).path
    (folder / "model.joblib").write_bytes(payload)
    with pytest.raises(IntegrityError, match=r"model\.joblib"):
        registry.load(KEY, V1)
    assert not marker.exists()  # ... and the registry never ran it


def test_a_manifest_rewritten_without_the_key_is_refused(
    registry: ArtifactRegistry, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    folder = registry.publish(make_bundle(version=V1)).path
    files = {"meta.json": (folder / "meta.json").read_bytes(), "model.joblib": evil_pickle(marker)}
    (folder / "model.joblib").write_bytes(files["model.joblib"])
    forged, _ = make_manifest(KEY, V1, files, Signer(OTHER_SIGNING_KEY))
    (folder / "manifest.json").write_bytes(forged)
    with pytest.raises(IntegrityError, match="not in ITFF_ARTIFACT_PUBLIC_KEYS"):
        registry.load(KEY, V1)
    unsigned, _ = make_manifest(KEY, V1, files, None)
    (folder / "manifest.json").write_bytes(unsigned)
    with pytest.raises(IntegrityError, match="unsigned"):
        registry.load(KEY, V1)
    assert not marker.exists()


def test_a_signed_manifest_edited_by_hand_is_refused(registry: ArtifactRegistry) -> None:
    folder = registry.publish(make_bundle(version=V1)).path
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["created_at"] = "2030-01-01T00:00:00+00:00"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="edited after signing"):
        registry.load(KEY, V1)


def test_a_version_copied_under_another_name_is_refused(registry: ArtifactRegistry) -> None:
    import shutil

    folder = registry.publish(make_bundle(version=V1)).path
    shutil.copytree(folder, folder.parent / V2)
    with pytest.raises(IntegrityError, match="does not match"):
        registry.load(KEY, V2)


def test_without_a_key_checksums_still_protect(tmp_path: Path) -> None:
    registry = ArtifactRegistry(tmp_path / "artifacts")
    folder = registry.publish(make_bundle(version=V1)).path
    assert json.loads((folder / "manifest.json").read_text())["signature"] is None
    assert registry.load(KEY, V1).version == V1
    flip_byte(folder / "model.joblib", offset=50)
    with pytest.raises(IntegrityError, match=r"model\.joblib"):
        registry.load(KEY, V1)


def test_a_key_that_is_not_ed25519_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not an Ed25519 private key"):
        ArtifactRegistry(tmp_path, signing_key=LEGACY_HMAC_KEY.decode())
    with pytest.raises(ConfigError, match="not an Ed25519 public key"):
        ArtifactRegistry(tmp_path, public_keys=[SIGNING_KEY])  # a private key where public go


def test_registry_from_settings_signs_with_the_configured_key(settings: Settings) -> None:
    from pydantic import SecretStr

    signed = settings.model_copy(update={"artifact_signing_key": SecretStr(SIGNING_KEY)})
    assert registry_from_settings(signed).signed
    assert not registry_from_settings(settings).signed
    assert registry_from_settings(settings).root == settings.artifact_dir


def test_a_reader_with_only_the_public_key_verifies_but_cannot_sign(
    registry: ArtifactRegistry,
) -> None:
    registry.publish(make_bundle(version=V1))
    reader = ArtifactRegistry(registry.root, public_keys=[PUBLIC_KEY])
    assert reader.load(KEY, V1).version == V1
    with pytest.raises(ConfigError, match="ITFF_ARTIFACT_SIGNING_KEY is not set"):
        reader.resign()


def test_a_model_signed_by_a_key_not_in_the_public_keys_is_refused(tmp_path: Path) -> None:
    rogue = ArtifactRegistry(tmp_path / "artifacts", signing_key=OTHER_SIGNING_KEY)
    rogue.publish(make_bundle(version=V1))
    consumer = ArtifactRegistry(rogue.root, public_keys=[PUBLIC_KEY])
    with pytest.raises(IntegrityError, match="not in ITFF_ARTIFACT_PUBLIC_KEYS"):
        consumer.load(KEY, V1)
    rotating = ArtifactRegistry(rogue.root, public_keys=[PUBLIC_KEY, OTHER_PUBLIC_KEY])
    assert rotating.load(KEY, V1).version == V1  # both keys trusted during a rotation


def hmac_era_registry(root: Path) -> ArtifactRegistry:
    """A registry as the HMAC releases left it: manifests signed with the shared key."""
    writer = ArtifactRegistry(root)
    for version in (V1, V2):
        folder = writer.publish(make_bundle(version=version)).path
        document = json.loads((folder / "manifest.json").read_text())
        del document["signature"]
        document["signature"] = legacy_hmac_signature(LEGACY_HMAC_KEY, canonical(document))
        (folder / "manifest.json").write_text(json.dumps(document))
    (root / KEY / "CHAMPION").write_text(f"{V2}\n")  # one line, unsigned, as they wrote it
    return writer


def test_an_hmac_era_registry_serves_during_the_transition_and_is_resigned(
    tmp_path: Path,
) -> None:
    root = tmp_path / "artifacts"
    hmac_era_registry(root)
    without_legacy = ArtifactRegistry(root, public_keys=[PUBLIC_KEY])
    with pytest.raises(IntegrityError, match="ITFF_ARTIFACT_LEGACY_HMAC_KEY"):
        without_legacy.load(KEY)
    transition = ArtifactRegistry(root, public_keys=[PUBLIC_KEY], legacy_hmac_key=LEGACY_HMAC_KEY)
    digest = transition.check_version(KEY, V2)
    assert transition.load(KEY).version == V2
    wrong = ArtifactRegistry(root, public_keys=[PUBLIC_KEY], legacy_hmac_key=b"x" * 32)
    with pytest.raises(IntegrityError, match="HMAC signature does not verify"):
        wrong.load(KEY)

    scheduler = ArtifactRegistry(root, SIGNING_KEY, legacy_hmac_key=LEGACY_HMAC_KEY)
    assert scheduler.resign() == [f"{KEY}/{V1}", f"{KEY}/{V2}"]
    assert scheduler.pointer(KEY).sequence == 1  # type: ignore[union-attr]
    assert scheduler.resign() == []  # already signed with this key
    assert scheduler.pointer(KEY).sequence == 1  # type: ignore[union-attr]
    assert without_legacy.load(KEY).version == V2  # the legacy key is no longer needed
    assert without_legacy.check_version(KEY, V2) == digest  # same body, same digest


def test_a_failed_publish_leaves_no_partial_version(
    registry: ArtifactRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_fails(_path: Path) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(artifacts_module, "fsync_dir", disk_fails)
    with pytest.raises(OSError, match="no space"):
        registry.publish(make_bundle(version=V1))
    monkeypatch.undo()
    assert registry.versions(KEY) == []
    assert list((registry.root / ".staging").iterdir()) == []
    registry.publish(make_bundle(version=V1))  # the same version can be published afterwards
    assert [v.version for v in registry.versions(KEY)] == [V1]


def test_an_unserialisable_pipeline_is_refused_cleanly(registry: ArtifactRegistry) -> None:
    bundle = make_bundle(version=V1)
    bundle.pipeline.steps[-1][1].unpicklable = threading.Lock()
    with pytest.raises(BadInput, match="cannot be serialised"):
        registry.publish(bundle)
    assert registry.keys() == []


def test_readers_only_ever_see_complete_versions(registry: ArtifactRegistry) -> None:
    bundles = [make_bundle(version=f"20260101T0000{i:02d}Z-0001", seed=i) for i in range(6)]
    errors: list[BaseException] = []
    seen: set[str] = set()
    done = threading.Event()

    def read() -> None:
        reader = ArtifactRegistry(registry.root, public_keys=[PUBLIC_KEY])
        while not done.is_set():
            try:
                for info in reader.versions(KEY):
                    reader.load(KEY, info.version)
                    seen.add(info.version)
            except BaseException as exc:
                errors.append(exc)
                return

    thread = threading.Thread(target=read)
    thread.start()
    for bundle in bundles:
        registry.publish(bundle)
        registry.promote(KEY, bundle.version)
        # the reader loads each version before the next is written beside it
        deadline = time.monotonic() + 60
        while bundle.version not in seen and not errors and time.monotonic() < deadline:
            time.sleep(0.005)
    done.set()
    thread.join()
    assert errors == []
    assert seen == {b.version for b in bundles}


def test_promote_rollback_and_statuses(registry: ArtifactRegistry) -> None:
    for version in (V1, V2, V3, V4):
        registry.publish(make_bundle(version=version))
    assert registry.champion(KEY) is None
    with pytest.raises(NotFound, match="no champion"):
        registry.load(KEY)
    for version in (V1, V2, V3):
        registry.promote(KEY, version)
    assert registry.champions() == {KEY: V3}
    statuses = {v.version: v.status for v in registry.versions(KEY)}
    assert statuses == {V1: "retired", V2: "retired", V3: "champion", V4: "challenger"}
    assert registry.rollback_target(KEY) == V2
    assert registry.rollback(KEY) == V2
    assert registry.load(KEY).version == V2
    assert registry.rollback(KEY) == V1
    with pytest.raises(NotFound, match="no previous champion"):
        registry.rollback(KEY)
    assert registry.rollback(KEY, to=V4) == V4
    with pytest.raises(BadInput, match="already the champion"):
        registry.rollback(KEY, to=V4)
    with pytest.raises(NotFound, match="no version"):
        registry.rollback(KEY, to="20990101T000000Z-0001")


def test_rollback_to_a_tampered_version_keeps_the_champion(registry: ArtifactRegistry) -> None:
    for version in (V1, V2):
        registry.publish(make_bundle(version=version))
        registry.promote(KEY, version)
    flip_byte(registry.root / KEY / V1 / "model.joblib")
    with pytest.raises(IntegrityError, match=r"model\.joblib"):
        registry.rollback(KEY)
    assert registry.champion(KEY) == V2
    with pytest.raises(IntegrityError):
        registry.promote(KEY, V1)
    assert registry.champion(KEY) == V2


def test_prune_keeps_the_newest_the_champion_and_the_rollback_target(
    registry: ArtifactRegistry,
) -> None:
    versions = [f"20260101T0000{i:02d}Z-0001" for i in range(6)]
    for version in versions:
        registry.publish(make_bundle(version=version))
    registry.promote(KEY, versions[0])
    registry.promote(KEY, versions[1])  # champion; rollback target = versions[0]
    removed = registry.prune(keep=2)
    assert removed == [f"{KEY}/{v}" for v in versions[2:4]]
    assert [v.version for v in registry.versions(KEY)] == [*versions[:2], *versions[4:]]
    assert registry.rollback(KEY) == versions[0]
    with pytest.raises(BadInput, match="at least 1"):
        registry.prune(keep=0)


def test_verify_reports_every_version_and_a_dangling_pointer(registry: ArtifactRegistry) -> None:
    for version in (V1, V2):
        registry.publish(make_bundle(version=version))
    registry.promote(KEY, V2)
    assert [(r.version, r.ok) for r in registry.verify()] == [(V1, True), (V2, True)]
    dangling = make_pointer(KEY, V3, 7, "promoted", Signer(SIGNING_KEY))
    (registry.root / KEY / "CHAMPION").write_bytes(dangling.raw)
    failed = [r for r in registry.verify(KEY) if not r.ok]
    assert [(r.version, r.file) for r in failed] == [(V3, "CHAMPION")]
    (registry.root / KEY / "CHAMPION").write_text(V2)  # unsigned: refused, named
    failed = [r for r in registry.verify(KEY) if not r.ok]
    assert [(r.file, "unsigned pointer" in str(r.problem)) for r in failed] == [("CHAMPION", True)]
    with pytest.raises(NotFound):
        registry.verify("NDX-direction-logreg")


def test_meta_is_verified_json_without_unpickling(registry: ArtifactRegistry) -> None:
    published = registry.publish(make_bundle(version=V1))
    registry.promote(KEY, V1)
    meta = registry.meta(KEY)
    assert (meta["version"], meta["lookback"], meta["metrics"]["roc_auc"]) == (V1, 2, "nan")
    info = registry.info(KEY, V1)
    assert (info.sha256, info.status, info.signed) == (published.sha256, "champion", True)


def test_keys_that_cannot_name_a_folder_are_refused(registry: ArtifactRegistry) -> None:
    with pytest.raises(BadInput, match="cannot name an artifact folder"):
        registry.publish(make_bundle(version=V1, symbol="BTC/USD"))
    with pytest.raises(BadInput, match="cannot name"):
        registry.load("../etc", V1)


def test_meta_json_of_a_bundle_is_strict_json() -> None:
    meta = json.loads(meta_of(make_bundle(version=V1)), parse_constant=_no_constants)
    assert meta["thresholds"] == {"buy": 0.55, "sell": 0.45}


def _no_constants(name: str) -> None:
    raise AssertionError(f"meta.json must be strict JSON, found {name}")


class _Passthrough:
    """A fitted transformer that is not a scaler."""

    def fit(self, X: np.ndarray, y: object = None) -> _Passthrough:
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return X

    def fit_transform(self, X: np.ndarray, y: object = None) -> np.ndarray:
        return self.fit(X, y).transform(X)


# ---- the `itff artifacts` commands -------------------------------------------------------------


@pytest.fixture
def cli_registry(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> ArtifactRegistry:
    """A registry at ITFF_ARTIFACT_DIR, signed with ITFF_ARTIFACT_SIGNING_KEY."""
    monkeypatch.setenv("ITFF_ARTIFACT_DIR", str(settings.artifact_dir))
    monkeypatch.setenv("ITFF_ARTIFACT_SIGNING_KEY", SIGNING_KEY)
    registry = ArtifactRegistry(settings.artifact_dir, signing_key=SIGNING_KEY)
    for version in (V1, V2, V3):
        registry.publish(make_bundle(version=version))
    registry.promote(KEY, V1)
    registry.promote(KEY, V2)
    return registry


def run_cli(*args: str) -> tuple[int, str]:
    import typer
    from typer.testing import CliRunner

    from bot.cli import artifacts, pipeline

    app = typer.Typer()
    artifacts.register(app)
    pipeline.register(app)
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_cli_artifacts_group_lists_push_on_its_own() -> None:
    """`push` belongs to the group, not to the order in which command modules register."""
    import typer

    from bot.cli import artifacts

    app = typer.Typer()
    artifacts.register(app)
    group = typer.main.get_command(app).commands["artifacts"]  # type: ignore[attr-defined]
    assert sorted(group.commands) == [
        "fetch", "keygen", "list", "prune", "push", "resign", "verify"
    ]  # fmt: skip


def test_cli_verify_passes_then_names_a_flipped_byte(cli_registry: ArtifactRegistry) -> None:
    code, output = run_cli("artifacts", "verify")
    assert code == 0
    assert "3/3 versions verified" in output
    assert "Ed25519 signatures" in output
    flip_byte(cli_registry.root / KEY / V2 / "model.joblib")
    code, output = run_cli("artifacts", "verify")
    assert code == 1
    assert f"FAILED  {KEY}/{V2} model.joblib: " in output
    assert "SHA-256 mismatch" in output
    code, output = run_cli("artifacts", "verify", "--json")
    failed = [r for r in json.loads(output) if not r["ok"]]
    assert [(r["version"], r["file"]) for r in failed] == [(V2, "model.joblib")]


def test_cli_list_shows_statuses_digests_and_metrics(cli_registry: ArtifactRegistry) -> None:
    code, output = run_cli("artifacts", "list", "--json")
    assert code == 0
    records = {r["version"]: r for r in json.loads(output)}
    assert {v: r["status"] for v, r in records.items()} == {
        V1: "retired",
        V2: "champion",
        V3: "challenger",
    }
    assert records[V2]["sha256"] == cli_registry.info(KEY, V2).sha256
    assert records[V2]["metrics"] == {"accuracy": 0.61}
    code, output = run_cli("artifacts", "list")
    assert "champion" in output
    assert "accuracy=0.610" in output


@pytest.mark.kafka
def test_cli_rollback_and_prune(cli_registry: ArtifactRegistry, on_broker: Settings) -> None:
    code, output = run_cli("rollback", KEY)
    assert (code, cli_registry.champion(KEY)) == (0, V1)
    assert f"{KEY}: champion is now {V1}" in output
    code, output = run_cli("artifacts", "prune", "--keep", "1")
    assert code == 0
    assert f"removed {KEY}/{V2}" in output  # V1 is the champion, V3 the newest
    assert [v.version for v in cli_registry.versions(KEY)] == [V1, V3]


@pytest.mark.kafka
def test_cli_errors_are_one_clear_line(cli_registry: ArtifactRegistry, on_broker: Settings) -> None:
    import subprocess
    import sys

    flip_byte(cli_registry.root / KEY / V1 / "meta.json")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "itff"), "rollback", KEY],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"itff: {KEY}/{V1}/meta.json: SHA-256 mismatch")
    assert "Traceback" not in result.stderr
    assert cli_registry.champion(KEY) == V2


def test_cli_keygen_prints_a_pair_that_signs_and_verifies(tmp_path: Path) -> None:
    code, output = run_cli("artifacts", "keygen", "--json")
    assert code == 0
    pair = json.loads(output)
    private, public = pair["ITFF_ARTIFACT_SIGNING_KEY"], pair["ITFF_ARTIFACT_PUBLIC_KEYS"]
    Settings(artifact_signing_key=private, artifact_public_keys=public)  # type: ignore[arg-type]
    ArtifactRegistry(tmp_path, signing_key=private).publish(make_bundle(version=V1))
    assert ArtifactRegistry(tmp_path, public_keys=[public]).load(KEY, V1).version == V1
    assert run_cli("artifacts", "keygen", "--json")[1] != output  # a new pair each time
