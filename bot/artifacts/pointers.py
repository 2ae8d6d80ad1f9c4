"""Champion pointers: signed, monotonic statements of which version serves a model key.

`{key}/CHAMPION` (locally and in the bucket) holds a JSON statement signed like a manifest:

    {"format": 1, "key": K, "version": V, "sequence": N, "issued_at": ISO time,
     "event": "promoted" | "rolled_back" | "resigned", "signature": {...}}

Each champion switch on the scheduler issues the next sequence number. A reader refuses a pointer
whose sequence is lower than the one it already accepted (a replayed older pointer: a bucket
writer pointing consumers back at an older, still validly signed version), and a second pointer
with the same sequence naming another version. A rollback is a new statement: `itff rollback`
signs a higher sequence that names the older version.

A pointer of the HMAC era (one line: the version) reads as sequence 0 and unsigned: accepted only
without keys (development) or during the HMAC transition (`ITFF_ARTIFACT_LEGACY_HMAC_KEY`), and
superseded by the first signed switch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.artifacts.format import (
    CHAMPION_FILE,
    FORMAT,
    ArtifactIntegrityError,
    canonical,
    is_name,
)
from bot.artifacts.signing import SignatureError, Signer, Verifier

EVENTS = ("promoted", "rolled_back", "resigned")


@dataclass(frozen=True, slots=True)
class Pointer:
    key: str
    version: str
    sequence: int  # 0: a legacy (unsigned, one-line) pointer
    event: str
    issued_at: str
    signed: bool
    raw: bytes  # the statement as written: copied verbatim from the bucket to a consumer


def make_pointer(
    key: str, version: str, sequence: int, event: str, signer: Signer | None
) -> Pointer:
    """A new pointer statement, signed when a signer is given."""
    from bot.contracts import utcnow

    issued_at = utcnow().isoformat()
    body = {
        "format": FORMAT,
        "key": key,
        "version": version,
        "sequence": sequence,
        "event": event,
        "issued_at": issued_at,
    }
    document = {**body, "signature": signer.sign(canonical(body)) if signer else None}
    raw = json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"
    return Pointer(key, version, sequence, event, issued_at, signer is not None, raw)


def parse_pointer(raw: bytes, verifier: Verifier, *, key: str, where: str) -> Pointer:
    """Authenticate a pointer read from `where` for `key`; ArtifactIntegrityError otherwise."""
    text = raw.decode("utf-8", errors="replace").strip()
    if not text.startswith("{"):
        return _legacy(raw, text, verifier, key=key, where=where)
    try:
        document = json.loads(text)
        signature = document.pop("signature", None)
        body = canonical(document)
    except (ValueError, TypeError, AttributeError) as exc:
        raise _broken(where, f"is not a champion pointer ({exc})") from exc
    try:
        signed = verifier.check(body, signature, what=where)
    except SignatureError as exc:
        raise _broken(where, str(exc).removeprefix(where).lstrip(": ")) from exc
    return _checked(document, key, where, signed=signed, raw=raw)


def pointer_version(raw: bytes) -> str | None:
    """The version a pointer names, unauthenticated (to locate files; verify before trusting)."""
    text = raw.decode("utf-8", errors="replace").strip()
    if not text.startswith("{"):
        return text or None
    try:
        version = json.loads(text).get("version")
    except (ValueError, AttributeError):
        return None
    return version if isinstance(version, str) else None


def refuse_older(current: Pointer | None, new: Pointer, *, where: str) -> None:
    """Raise when `new` would move the key backwards from `current` (monotonic sequences)."""
    if current is None or new.sequence > current.sequence:
        return
    if new.sequence == current.sequence and (new.version == current.version or new.sequence == 0):
        return
    raise ArtifactIntegrityError(
        f"{where} names {new.key} {new.version} at sequence {new.sequence}, but {current.version} "
        f"at sequence {current.sequence} is already served: an older pointer replayed (a "
        "rollback by whoever can write the artifacts) is refused; a real rollback is "
        f"`itff rollback {new.key}` on the scheduler, which signs a higher sequence",
        file=CHAMPION_FILE,
    )


def _checked(document: Any, key: str, where: str, *, signed: bool, raw: bytes) -> Pointer:
    fields = (document.get(name) for name in ("format", "key", "version", "sequence", "event"))
    fmt, named, version, sequence, event = fields
    if fmt != FORMAT or not isinstance(version, str) or not is_name(version):
        raise _broken(where, f"does not name a version (format {fmt!r}, version {version!r})")
    if named != key:
        raise _broken(where, f"is the pointer of {named!r}, not of {key!r}: it was copied")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
        raise _broken(where, f"has no valid sequence number ({sequence!r})")
    if event not in EVENTS:
        raise _broken(where, f"has an unknown event {event!r}")
    issued = str(document.get("issued_at", ""))
    return Pointer(key, version, sequence, str(event), issued, signed, raw)


def _legacy(raw: bytes, text: str, verifier: Verifier, *, key: str, where: str) -> Pointer:
    if verifier.public_keys and verifier.legacy_hmac_key is None:
        raise _broken(
            where,
            "is an unsigned pointer of an earlier release: re-issue it on the scheduler "
            f"(`itff rollback {key} --to VERSION` or the next promotion), or set "
            "ITFF_ARTIFACT_LEGACY_HMAC_KEY during the transition",
        )
    if not is_name(text):
        raise _broken(where, f"holds {text[:40]!r}, not a version name")
    return Pointer(key, text, 0, "promoted", "", signed=False, raw=raw)


def _broken(where: str, problem: str) -> ArtifactIntegrityError:
    return ArtifactIntegrityError(
        f"{where} {problem}; the champion was not switched", file=CHAMPION_FILE
    )
