"""Versioned, verified model artifacts: the registry that training publishes to and inference reads.

Layout under the root (`ITFF_ARTIFACT_DIR`), one folder per model key and version:

    {key}/{version}/model.joblib   the fitted pipeline (scaler first), nothing else
    {key}/{version}/meta.json      the rest of the ModelBundle (plain JSON)
    {key}/{version}/manifest.json  SHA-256 and size of each file, signed with Ed25519
    {key}/CHAMPION                 the serving version: a signed pointer with a sequence number
                                   (bot.artifacts.pointers), switched with os.replace
    {key}/HISTORY.json             former champions (the rollback stack) and promotion events

Nothing is unpickled before the manifest's signature and every checksum verify, and the pickle is
loaded from the very bytes that were hashed. A version appears by one directory rename, so readers
see complete versions only; writers (publish, promote, rollback, prune, install) are serialised by
a lock file, which is enough for one writing process and many reading ones.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.artifacts.compiled import CompiledModel, NoCompiledForm, export_compiled
from bot.artifacts.format import (
    CHAMPION_FILE,
    HISTORY_FILE,
    MANIFEST_FILE,
    META_FILE,
    MODEL_FILE,
    SERVING_FILE,
    ArtifactIntegrityError,
    Manifest,
    WriterLock,
    check_name,
    fsync_dir,
    is_name,
    make_manifest,
    read_history,
    read_manifest,
    replace_atomically,
    resign_manifest,
    verified_bytes,
    write_history,
    write_synced,
)
from bot.artifacts.meta import bundle_from_meta, check_bundle, meta_of, pickle_pipeline
from bot.artifacts.pointers import (
    Pointer,
    make_pointer,
    parse_pointer,
    pointer_version,
    refuse_older,
)
from bot.artifacts.signing import Signer, Verifier
from bot.artifacts.versions import PublishedVersion, Status, VerificationResult, VersionInfo
from bot.contracts import BadInput, ConfigError, IntegrityError, NotFound
from bot.core import ModelBundle, Thresholds

if TYPE_CHECKING:
    from bot.contracts import Settings


STAGING_DIR = ".staging"
LOCK_FILE = ".lock"
STALE_STAGING_SECONDS = 3600


class ArtifactRegistry:
    """Model versions on disk, verified before use. See the module docstring for the layout."""

    def __init__(
        self,
        root: Path,
        signing_key: str | None = None,
        *,
        public_keys: Sequence[str] = (),
        legacy_hmac_key: bytes | None = None,
    ) -> None:
        """`signing_key` (Ed25519 private, the scheduler's) signs what this registry publishes;
        `public_keys` (and the signing key's own) verify; `legacy_hmac_key` verifies HMAC-era
        manifests during the transition. No key at all: checksums only (development)."""
        self.root = Path(root)
        self._signer = Signer(signing_key) if signing_key else None
        self._verifier = Verifier.of(
            public_keys, signer=self._signer, legacy_hmac_key=legacy_hmac_key
        )
        self._writer_lock = WriterLock(self.root / LOCK_FILE)
        self._seen: dict[str, Pointer] = {}  # the newest pointer accepted per key
        self._seen_lock = threading.Lock()

    @property
    def signed(self) -> bool:
        """Whether signatures are required (a key is configured)."""
        return self._verifier.enabled

    @property
    def verifier(self) -> Verifier:
        return self._verifier

    @property
    def key_ids(self) -> list[str]:
        return self._verifier.key_ids

    # ---- readers -------------------------------------------------------------------------

    def keys(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and is_name(p.name))

    def champion(self, key: str) -> str | None:
        pointer = self.pointer(key)
        return pointer.version if pointer else None

    def pointer(self, key: str) -> Pointer | None:
        """The verified champion pointer of `key`; one older than a pointer this registry object
        accepted before (a replay) is refused with `ArtifactIntegrityError`."""
        where = f"{check_name(key, 'model key')}/{CHAMPION_FILE}"
        try:
            raw = (self.root / key / CHAMPION_FILE).read_bytes()
        except FileNotFoundError:
            return None
        with self._seen_lock:
            seen = self._seen.get(key)
        if seen is not None and seen.raw == raw:
            return seen  # the very bytes verified before: no second signature check
        pointer = parse_pointer(raw, self._verifier, key=key, where=where)
        with self._seen_lock:
            refuse_older(self._seen.get(key), pointer, where=where)
            self._seen[key] = pointer
        return pointer

    def champions(self) -> dict[str, str]:
        found = {key: self.champion(key) for key in self.keys()}
        return {key: version for key, version in found.items() if version}

    def versions(self, key: str) -> list[VersionInfo]:
        champion = self.champion(key)
        history = self._history(key)
        ever = {event["version"] for event in history["events"]} | set(history["previous"])
        return [self._info(key, v, champion, ever) for v in self._version_names(key)]

    def info(self, key: str, version: str) -> VersionInfo:
        for item in self.versions(key):
            if item.version == version:
                return item
        raise NotFound(f"{key} has no version {version!r}; see `itff artifacts list`")

    def rollback_target(self, key: str) -> str | None:
        """The version `rollback(key)` would return to: the latest former champion still present."""
        current = self.champion(key)
        present = set(self._version_names(key))
        for version in reversed(self._history(key)["previous"]):
            if version != current and version in present:
                return str(version)
        return None

    def meta(self, key: str, version: str | None = None) -> dict[str, Any]:
        """The verified meta.json of a version (the champion by default); no unpickling."""
        version = self._resolve(key, version)
        manifest = self._manifest(key, version)
        raw = verified_bytes(self._dir(key, version), META_FILE, manifest, label=f"{key}/{version}")
        return dict(json.loads(raw))

    def load(self, key: str, version: str | None = None) -> ModelBundle:
        """The bundle of a version (the champion by default), unpickled only once it verifies."""
        version = self._resolve(key, version)
        folder = self._dir(key, version)
        label = f"{key}/{version}"
        manifest = self._manifest(key, version)
        meta_raw = verified_bytes(folder, META_FILE, manifest, label=label)
        model_raw = verified_bytes(folder, MODEL_FILE, manifest, label=label)
        import joblib  # the sklearn runtime only: compiled serving never unpickles

        pipeline = joblib.load(io.BytesIO(model_raw))
        bundle = bundle_from_meta(json.loads(meta_raw), pipeline, label=label)
        if bundle.key != key or bundle.version != version:
            raise ArtifactIntegrityError(
                f"{label}: meta.json describes {bundle.key}/{bundle.version}; the folder was "
                "moved or copied by hand: re-publish or re-fetch it",
                file=META_FILE,
            )
        return bundle

    def load_compiled(self, key: str, version: str | None = None) -> CompiledModel:
        """The compiled serving form of a version (the champion by default); never unpickles.

        Raises `NoCompiledForm` when the version was published without one.
        """
        version = self._resolve(key, version)
        folder, label = self._dir(key, version), f"{key}/{version}"
        manifest = self._manifest(key, version)
        if SERVING_FILE not in manifest.files:
            raise NoCompiledForm(f"{label} has no compiled serving form; it is served by sklearn")
        meta = json.loads(verified_bytes(folder, META_FILE, manifest, label=label))
        serving = json.loads(verified_bytes(folder, SERVING_FILE, manifest, label=label))
        name = serving.get("file") if isinstance(serving, dict) else None
        if name not in manifest.files or name in (META_FILE, MODEL_FILE, SERVING_FILE):
            raise ArtifactIntegrityError(
                f"{label}: serving.json names {name!r}, not a compiled file of the manifest; "
                "re-publish the version",
                file=SERVING_FILE,
            )
        model = verified_bytes(folder, str(name), manifest, label=label)
        for other in set(manifest.files) - {META_FILE, SERVING_FILE, str(name)}:
            # hashed, never unpickled: a version with any altered file is not served at all
            verified_bytes(folder, other, manifest, label=label)
        try:
            compiled = CompiledModel(
                bundle_from_meta(meta, None, label=label, compiled=True), serving, model
            )
        except Exception as exc:  # any runtime's parse error means the same
            raise ArtifactIntegrityError(
                f"{label}: the compiled serving form is malformed ({exc!r}); re-publish it",
                file=SERVING_FILE,
            ) from exc
        if compiled.bundle.key != key or compiled.bundle.version != version:
            raise ArtifactIntegrityError(
                f"{label}: meta.json describes {compiled.bundle.key}/{compiled.bundle.version}; "
                "the folder was moved or copied by hand: re-publish or re-fetch it",
                file=META_FILE,
            )
        return compiled

    def check_manifest(self, folder: Path, key: str, version: str) -> Manifest:
        """Parse and authenticate the manifest in `folder` (e.g. a download) for key/version."""
        return read_manifest(folder, key, version, self._verifier, label=f"{key}/{version}")

    def check_version(self, key: str, version: str) -> str:
        """Verify a published version (signature and checksums, no unpickling); its digest."""
        return self._check_version(key, version)

    def verify(self, key: str | None = None) -> list[VerificationResult]:
        """Re-hash every published file (of one key or all) against its manifest."""
        if key is not None and key not in self.keys():
            raise NotFound(f"no artifacts for {key!r} under {self.root}; see `itff artifacts list`")
        results: list[VerificationResult] = []
        for name in [key] if key else self.keys():
            results.extend(self._verify_key(name))
        return results

    # ---- writers -------------------------------------------------------------------------

    def publish(self, bundle: ModelBundle) -> PublishedVersion:
        """Write a new version atomically: staged, fsynced, verified, then renamed into place."""
        check_bundle(bundle)
        files = {
            META_FILE: meta_of(bundle),
            MODEL_FILE: pickle_pipeline(bundle.pipeline),
            **export_compiled(bundle),
        }
        manifest, digest = make_manifest(bundle.key, bundle.version, files, self._signer)
        with self._writer():
            self._refuse_existing(bundle.key, bundle.version)
            with self._staging() as staging:
                for name, data in {**files, MANIFEST_FILE: manifest}.items():
                    write_synced(staging / name, data)
                fsync_dir(staging)
                return self._install_staged(staging, bundle.key, bundle.version, digest)

    def derive(
        self, key: str, version: str, *, new_version: str, thresholds: Thresholds, reason: str
    ) -> PublishedVersion:
        """Publish `new_version` of `key`: the verified model files of `version`, unchanged, with
        other decision thresholds (recalibration). The source version is never touched."""
        from bot.contracts import utcnow

        label = f"{key}/{version}"
        manifest = self._manifest(key, self._resolve(key, version))
        folder = self._dir(key, version)
        files = {
            name: verified_bytes(folder, name, manifest, label=label) for name in manifest.files
        }
        meta = json.loads(files[META_FILE])
        meta.update(
            version=new_version,
            thresholds={"buy": thresholds.buy, "sell": thresholds.sell},
            created_at=utcnow().isoformat(),
            derived_from={"version": version, "reason": reason},
        )
        check_bundle(bundle_from_meta(meta, None, label=label, compiled=True), pipeline=False)
        files[META_FILE] = json.dumps(meta, separators=(",", ":"), allow_nan=False).encode()
        body, digest = make_manifest(key, new_version, files, self._signer)
        with self._writer():
            self._refuse_existing(key, new_version)
            with self._staging() as staging:
                for name, data in {**files, MANIFEST_FILE: body}.items():
                    write_synced(staging / name, data)
                fsync_dir(staging)
                return self._install_staged(staging, key, new_version, digest)

    def install(self, staging: Path) -> PublishedVersion:
        """Move a downloaded version folder (made by `staging()`) into place once it verifies.

        Idempotent when the same version is already installed with the same manifest digest.
        """
        manifest = read_manifest(staging, None, None, self._verifier, label=str(staging.name))
        key, version = manifest.key, manifest.version
        check_name(key, "model key")
        check_name(version, "version")
        with self._writer():
            if self._dir(key, version).exists():
                return self._same_or_refuse(key, version, manifest.digest)
            return self._install_staged(staging, key, version, manifest.digest)

    def adopt(self, raw: bytes, key: str) -> Pointer:
        """Install a pointer signed elsewhere (fetched from the bucket) verbatim, once it verifies,
        names a verified local version and is not older than the local one."""
        where = f"the fetched {key}/{CHAMPION_FILE}"
        pointer = parse_pointer(raw, self._verifier, key=key, where=where)
        with self._writer():
            self._check_version(key, pointer.version)
            current = self.pointer(key)
            refuse_older(current, pointer, where=where)
            with self._seen_lock:
                refuse_older(self._seen.get(key), pointer, where=where)
            if current is not None and current.raw == raw:
                return pointer
            history = self._history(key)
            if current and current.version != pointer.version:
                history["previous"].append(current.version)
            previous = current.version if current else None
            self._write_pointer(pointer, history, previous=previous)
            return pointer

    def promote(self, key: str, version: str) -> None:
        """Make a verified version the champion; the former one becomes the rollback target."""
        with self._writer():
            self._check_version(key, version)
            current = self._current(key)
            if current == version:
                return
            history = self._history(key)
            if current:
                history["previous"].append(current)
            self._switch(key, version, history, event="promoted", previous=current)

    def rollback(self, key: str, to: str | None = None) -> str:
        """Return to the previous champion (or `to`), verified first; returns the new champion."""
        with self._writer():
            current = self._current(key)
            target = to if to is not None else self.rollback_target(key)
            if target is None:
                raise NotFound(
                    f"{key} has no previous champion to roll back to; pick a version from "
                    f"`itff artifacts list` and run `itff rollback {key} --to VERSION`"
                )
            if target == current:
                raise BadInput(f"{target} is already the champion of {key}; nothing to roll back")
            self._check_version(key, target)
            history = self._history(key)
            stack: list[str] = history["previous"]
            if target in stack:
                del stack[len(stack) - 1 - stack[::-1].index(target) :]
            self._switch(key, target, history, event="rolled_back", previous=current)
            return target

    def resign(self) -> list[str]:
        """Re-sign every version that verifies (Ed25519, HMAC-era during the transition) with
        the signing key; the digests do not change. Returns the re-signed `key/version`s."""
        if self._signer is None:
            raise ConfigError(
                "ITFF_ARTIFACT_SIGNING_KEY is not set: `itff artifacts resign` signs with the "
                "private key (create one with `itff artifacts keygen`)"
            )
        changed: list[str] = []
        with self._writer():
            for key in self.keys():
                for version in self._version_names(key):
                    label = f"{key}/{version}"
                    folder = self._dir(key, version)
                    if resign_manifest(folder, self._verifier, self._signer, label=label):
                        changed.append(label)
                current = self._current(key)
                if current is not None and not self._signed_by_signer(key):
                    self._switch(key, current, self._history(key), event="resigned", previous=None)
        return changed

    def prune(self, keep: int) -> list[str]:
        """Delete all but the newest `keep` versions of each key, never the champion nor the
        rollback target; also clears stale staging folders. Returns the removed `key/version`s."""
        if keep < 1:
            raise BadInput(f"keep must be at least 1, got {keep}")
        removed: list[str] = []
        with self._writer():
            for key in self.keys():
                protected = {self.champion(key), self.rollback_target(key)}
                for version in self._version_names(key)[:-keep]:
                    if version not in protected:
                        self._discard(self._dir(key, version))
                        removed.append(f"{key}/{version}")
            self._clear_stale_staging()
        return removed

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A private folder under the root (same file system) to assemble a version in."""
        with self._staging() as path:
            yield path

    # ---- internals -----------------------------------------------------------------------

    def _dir(self, key: str, version: str) -> Path:
        return self.root / check_name(key, "model key") / check_name(version, "version")

    def _version_names(self, key: str) -> list[str]:
        folder = self.root / check_name(key, "model key")
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and is_name(p.name))

    def _resolve(self, key: str, version: str | None) -> str:
        resolved = version or self.champion(key)
        if resolved is None:
            raise NotFound(
                f"no champion for {key}: train and promote one (`itff pipeline run`) or fetch it "
                f"(`itff artifacts fetch --key {key}`)"
            )
        if not self._dir(key, resolved).is_dir():
            raise NotFound(f"{key} has no version {resolved!r} under {self.root}")
        return resolved

    def _manifest(self, key: str, version: str) -> Manifest:
        return read_manifest(
            self._dir(key, version), key, version, self._verifier, label=f"{key}/{version}"
        )

    def _check_version(self, key: str, version: str) -> str:
        """Verify signature and checksums of a version without unpickling; its digest."""
        version = self._resolve(key, version)
        manifest = self._manifest(key, version)
        for name in manifest.files:
            verified_bytes(self._dir(key, version), name, manifest, label=f"{key}/{version}")
        return str(manifest.digest)

    def _verify_key(self, key: str) -> list[VerificationResult]:
        results = []
        for version in self._version_names(key):
            try:
                self._check_version(key, version)
                results.append(VerificationResult(key, version, ok=True))
            except ArtifactIntegrityError as exc:
                if not self._dir(key, version).exists():
                    continue  # pruned while being verified: nothing left to be wrong
                results.append(
                    VerificationResult(key, version, ok=False, file=exc.file, problem=str(exc))
                )
        try:
            champion = self.champion(key)
        except ArtifactIntegrityError as exc:
            return [
                *results,
                VerificationResult(key, "", ok=False, file=exc.file, problem=str(exc)),
            ]
        if champion and champion not in self._version_names(key):
            problem = f"{key}/{CHAMPION_FILE} names {champion}, which does not exist"
            results.append(
                VerificationResult(key, champion, ok=False, file=CHAMPION_FILE, problem=problem)
            )
        return results

    def _info(self, key: str, version: str, champion: str | None, ever: set[str]) -> VersionInfo:
        status: Status = (
            "champion" if version == champion else "retired" if version in ever else "challenger"
        )
        folder = self._dir(key, version)
        try:
            manifest = read_manifest(folder, key, version, Verifier(), label=version)
        except IntegrityError:
            return VersionInfo(key, version, status, None, None, signed=False, path=folder)
        return VersionInfo(
            key, version, status, manifest.digest, manifest.created_at, manifest.signed, folder
        )

    def _history(self, key: str) -> dict[str, Any]:
        return read_history(self.root / check_name(key, "model key") / HISTORY_FILE)

    def _signed_by_signer(self, key: str) -> bool:
        try:
            document = json.loads((self.root / key / CHAMPION_FILE).read_bytes())
            signature = document.get("signature") or {}
        except (ValueError, AttributeError):
            return False
        return self._signer is not None and signature.get("key_id") == self._signer.key_id

    def _current(self, key: str) -> str | None:
        """The champion as the writer sees it: verified, or (on the scheduler, which re-signs
        whatever it switches) the version an unverifiable pointer names."""
        try:
            return self.champion(key)
        except ArtifactIntegrityError:
            if self._signer is None:
                raise
            return pointer_version((self.root / key / CHAMPION_FILE).read_bytes())

    def _switch(
        self, key: str, version: str, history: dict[str, Any], *, event: str, previous: str | None
    ) -> None:
        if self._signer is None and self._verifier.enabled:
            raise ConfigError(
                f"switching the champion of {key} needs ITFF_ARTIFACT_SIGNING_KEY (the pointer is "
                "signed): run it on the scheduler, a consumer only verifies"
            )
        sequence = self._last_sequence(key, history) + 1
        pointer = make_pointer(key, version, sequence, event, self._signer)
        self._write_pointer(pointer, history, previous=previous)

    def _last_sequence(self, key: str, history: dict[str, Any]) -> int:
        recorded = [int(e.get("sequence") or 0) for e in history["events"] if isinstance(e, dict)]
        try:
            raw = (self.root / key / CHAMPION_FILE).read_bytes()
            on_disk = int(json.loads(raw).get("sequence") or 0)
        except (FileNotFoundError, ValueError, AttributeError, TypeError):
            on_disk = 0
        return max([on_disk, *recorded])

    def _write_pointer(
        self, pointer: Pointer, history: dict[str, Any], *, previous: str | None
    ) -> None:
        key = pointer.key
        write_history(
            self.root / key / HISTORY_FILE, history, pointer.event, pointer.version, previous,
            sequence=pointer.sequence,
        )  # fmt: skip
        replace_atomically(self.root / key / CHAMPION_FILE, pointer.raw)
        with self._seen_lock:
            self._seen[key] = pointer

    def _refuse_existing(self, key: str, version: str) -> None:
        if self._dir(key, version).exists():
            raise BadInput(
                f"{key} already has a version {version}; versions are immutable: train again "
                "to get a new version"
            )

    def _same_or_refuse(self, key: str, version: str, digest: str) -> PublishedVersion:
        local = self._check_version(key, version)
        if local != digest:
            raise ArtifactIntegrityError(
                f"{key}/{version} exists locally with different content (manifest digest "
                f"{local[:12]} vs {digest[:12]}); a version must never change: investigate "
                "both copies before deleting either",
                file=MANIFEST_FILE,
            )
        return PublishedVersion(key, version, local, self._dir(key, version))

    def _install_staged(
        self, staging: Path, key: str, version: str, digest: str
    ) -> PublishedVersion:
        manifest = read_manifest(staging, key, version, self._verifier, label=f"{key}/{version}")
        for name in manifest.files:
            verified_bytes(staging, name, manifest, label=f"{key}/{version} (staged)")
        if manifest.digest != digest:
            raise ArtifactIntegrityError(
                f"{key}/{version}: the staged manifest changed while publishing", file=MANIFEST_FILE
            )
        final = self._dir(key, version)
        final.parent.mkdir(parents=True, exist_ok=True)
        self._refuse_existing(key, version)
        staging.rename(final)
        fsync_dir(final.parent)
        return PublishedVersion(key, version, digest, final)

    @contextlib.contextmanager
    def _staging(self) -> Iterator[Path]:
        parent = self.root / STAGING_DIR
        parent.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix="stage-", dir=parent))
        path.chmod(0o755)  # mkdtemp's 0700 would hide the version from readers of other users
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)  # gone already once renamed into place

    def _discard(self, folder: Path) -> None:
        """Remove a version: one rename makes it vanish for readers, then delete at leisure."""
        trash = Path(tempfile.mkdtemp(prefix="trash-", dir=self.root / STAGING_DIR))
        folder.rename(trash / folder.name)
        shutil.rmtree(trash, ignore_errors=True)

    def _clear_stale_staging(self) -> None:
        cutoff = time.time() - STALE_STAGING_SECONDS
        for path in (self.root / STAGING_DIR).glob("*"):
            if path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)

    @contextlib.contextmanager
    def _writer(self) -> Iterator[None]:
        with self._writer_lock.hold():
            (self.root / STAGING_DIR).mkdir(parents=True, exist_ok=True)
            yield


def registry_from_settings(settings: Settings) -> ArtifactRegistry:
    """The registry at `ITFF_ARTIFACT_DIR`: signing with `ITFF_ARTIFACT_SIGNING_KEY` when set,
    verifying with `ITFF_ARTIFACT_PUBLIC_KEYS` (and `ITFF_ARTIFACT_LEGACY_HMAC_KEY`)."""
    private = settings.artifact_signing_key
    legacy = settings.artifact_legacy_hmac_key
    return ArtifactRegistry(
        settings.artifact_dir,
        private.get_secret_value() if private is not None else None,
        public_keys=settings.artifact_public_keys,
        legacy_hmac_key=legacy.get_secret_value().encode() if legacy is not None else None,
    )
