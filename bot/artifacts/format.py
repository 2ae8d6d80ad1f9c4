"""The on-disk format of artifact versions: names, manifest, signature, atomic file writes.

The manifest lists the SHA-256 and size of each file of the version. Its canonical form (the JSON
document without `signature`, keys sorted, no spaces, ASCII) is what the Ed25519 key signs
(`bot.artifacts.signing`) and what the version digest (`sha256` of a version, in ModelEvents)
hashes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.artifacts.signing import SignatureError, Signer, Verifier
from bot.contracts import BadInput, IntegrityError

FORMAT = 1
MODEL_FILE = "model.joblib"
META_FILE = "meta.json"
MANIFEST_FILE = "manifest.json"
CHAMPION_FILE = "CHAMPION"
HISTORY_FILE = "HISTORY.json"
SERVING_FILE = "serving.json"
ONNX_FILE = "model.onnx"
TREELITE_FILE = "model.treelite"
LINEAR_FILE = "model.linear.json"
ARTIFACT_FILES = (META_FILE, MODEL_FILE)  # in every version
MODEL_FILES = (LINEAR_FILE, TREELITE_FILE, ONNX_FILE)  # one of them in a compiled form
COMPILED_FILES = (SERVING_FILE, *MODEL_FILES)  # in versions with a compiled form
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:!-]{0,119}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_RESERVED = frozenset({CHAMPION_FILE, HISTORY_FILE})
MAX_HISTORY = 200


class ArtifactIntegrityError(IntegrityError):
    """An artifact failed verification; `file` names the file at fault."""

    def __init__(self, message: str, *, file: str | None = None) -> None:
        super().__init__(message)
        self.file = file


@dataclass(frozen=True, slots=True)
class FileEntry:
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Manifest:
    key: str
    version: str
    created_at: str
    files: dict[str, FileEntry]
    digest: str  # SHA-256 of the canonical manifest
    signed: bool


def is_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name)) and name not in _RESERVED


def check_name(name: str, what: str) -> str:
    if not is_name(name):
        raise BadInput(
            f"{what} {name[:80]!r} cannot name an artifact folder: use letters, digits and "
            "'._:!-' (no '/', at most 120 characters, not starting with a dot)"
        )
    return name


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def make_manifest(
    key: str, version: str, files: dict[str, bytes], signer: Signer | None
) -> tuple[bytes, str]:
    """The manifest document for `files` and the version digest."""
    from bot.contracts import utcnow

    body = {
        "format": FORMAT,
        "key": key,
        "version": version,
        "created_at": utcnow().isoformat(),
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in sorted(files.items())
        },
    }
    raw = canonical(body)
    document = {**body, "signature": signer.sign(raw) if signer else None}
    return json.dumps(document, indent=2, sort_keys=True).encode() + b"\n", _digest(raw)


def read_manifest(
    folder: Path, key: str | None, version: str | None, verifier: Verifier, *, label: str
) -> Manifest:
    """Parse and authenticate a manifest; `key`/`version` must match when given."""
    try:
        document = json.loads((folder / MANIFEST_FILE).read_bytes())
        signature = document.pop("signature", None) if isinstance(document, dict) else None
        raw = canonical(document) if isinstance(document, dict) else b""
    except FileNotFoundError as exc:
        raise _broken(label, "manifest.json is missing") from exc
    except (ValueError, TypeError) as exc:
        raise _broken(label, f"manifest.json is not a valid manifest ({exc})") from exc
    if not isinstance(document, dict):
        raise _broken(label, "manifest.json is not a JSON object")
    try:
        signed = verifier.check(raw, signature, what=f"{label}/{MANIFEST_FILE}")
    except SignatureError as exc:
        raise ArtifactIntegrityError(
            f"{exc}; the version was not loaded: roll back or re-publish it", file=MANIFEST_FILE
        ) from exc
    return _parse_manifest(document, key, version, raw, signed=signed, label=label)


def resign_manifest(folder: Path, verifier: Verifier, signer: Signer, *, label: str) -> bool:
    """Re-sign a verified manifest with `signer` (same body, same digest); whether it changed."""
    path = folder / MANIFEST_FILE
    read_manifest(folder, None, None, verifier, label=label)
    document = json.loads(path.read_bytes())
    signature = document.pop("signature", None)
    if isinstance(signature, dict) and signature.get("key_id") == signer.key_id:
        return False
    document["signature"] = signer.sign(canonical(document))
    replace_atomically(path, json.dumps(document, indent=2, sort_keys=True).encode() + b"\n")
    return True


def verified_bytes(folder: Path, name: str, manifest: Manifest, *, label: str) -> bytes:
    """The content of `name`, only if its size and SHA-256 match the manifest."""
    entry = manifest.files[name]
    path = folder / name
    try:
        size = path.stat().st_size
        data = path.read_bytes() if size == entry.size else b""
    except FileNotFoundError as exc:
        raise ArtifactIntegrityError(
            f"{label}/{name} is missing; roll back or re-publish / re-fetch this version", file=name
        ) from exc
    actual = hashlib.sha256(data).hexdigest()
    if size != entry.size or not hmac.compare_digest(actual, entry.sha256):
        raise ArtifactIntegrityError(
            f"{label}/{name}: SHA-256 mismatch (manifest {entry.sha256[:12]}, file "
            f"{actual[:12] if size == entry.size else f'of {size} bytes, not {entry.size}'}): "
            "the file was altered or corrupted and was not loaded; roll back "
            "(`itff rollback KEY`) or re-publish / re-fetch this version",
            file=name,
        )
    return data


def _parse_manifest(
    doc: dict[str, Any],
    key: str | None,
    version: str | None,
    raw: bytes,
    *,
    signed: bool,
    label: str,
) -> Manifest:
    if doc.get("format") != FORMAT:
        raise _broken(label, f"manifest format {doc.get('format')!r} is not {FORMAT}")
    for field, expected in (("key", key), ("version", version)):
        if not isinstance(doc.get(field), str) or (expected and doc[field] != expected):
            raise _broken(label, f"manifest {field} {doc.get(field)!r} does not match {expected!r}")
    files = doc.get("files")
    if not isinstance(files, dict) or not _known_files(files):
        raise _broken(
            label,
            f"manifest must list {list(ARTIFACT_FILES)}, optionally with {SERVING_FILE} and one "
            f"of {' / '.join(MODEL_FILES)}",
        )
    entries = {name: _file_entry(files[name], label) for name in sorted(files)}
    created = str(doc.get("created_at", ""))
    return Manifest(doc["key"], doc["version"], created, entries, _digest(raw), signed)


def _known_files(files: dict[str, Any]) -> bool:
    names = set(files)
    compiled = names - set(ARTIFACT_FILES)
    return set(ARTIFACT_FILES) <= names and (
        not compiled or any(compiled == {SERVING_FILE, name} for name in MODEL_FILES)
    )


def _file_entry(entry: Any, label: str) -> FileEntry:
    sha = entry.get("sha256") if isinstance(entry, dict) else None
    size = entry.get("size") if isinstance(entry, dict) else None
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise _broken(label, "a manifest entry lacks a hex sha256")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _broken(label, "a manifest entry lacks a size")
    return FileEntry(sha, size)


def _broken(label: str, problem: str) -> ArtifactIntegrityError:
    return ArtifactIntegrityError(
        f"{label}: {problem}; the version was not loaded: re-publish or re-fetch it",
        file=MANIFEST_FILE,
    )


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


# ---- file system primitives -----------------------------------------------------------------


class WriterLock:
    """Serialises writers: re-entrant in a thread, exclusive across processes (flock)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.RLock()
        self._depth = 0

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with self._path.open("a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0
                    fcntl.flock(handle, fcntl.LOCK_UN)


def write_synced(path: Path, data: bytes) -> None:
    """Create `path` (never overwrite) and flush it to disk."""
    with path.open("xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def replace_atomically(path: Path, data: bytes) -> None:
    """Readers see the old content or the new one, never a mix (temp file + os.replace)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with temp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(path)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- HISTORY.json: former champions (the rollback stack) and champion events --------------------


def read_history(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"previous": [], "events": []}
    except ValueError as exc:
        data = exc
    if not isinstance(data, dict):
        raise ArtifactIntegrityError(
            f"{path} is not a valid history ({data}); fix or delete it (rollback targets are lost)",
            file=HISTORY_FILE,
        )
    return {"previous": list(data.get("previous", [])), "events": list(data.get("events", []))}


def write_history(
    path: Path,
    history: dict[str, Any],
    event: str,
    version: str,
    previous: str | None,
    *,
    sequence: int = 0,
) -> None:
    """Record a champion switch; `version` leaves the rollback stack (it now serves)."""
    from bot.contracts import utcnow

    history["previous"] = [v for v in history["previous"] if v != version][-MAX_HISTORY:]
    record = {
        "event": event,
        "version": version,
        "previous": previous,
        "sequence": sequence,
        "at": utcnow().isoformat(),
    }
    history["events"] = [*history["events"], record][-MAX_HISTORY:]
    replace_atomically(path, json.dumps(history, indent=2).encode())
