"""Ed25519 signatures of artifact statements (manifests, champion pointers).

The scheduler holds the private key (`ITFF_ARTIFACT_SIGNING_KEY`, `ed25519sk_...`) and signs;
consumers and `/predict` hold only public keys (`ITFF_ARTIFACT_PUBLIC_KEYS`, `ed25519pk_...`,
several during a rotation) and verify. Whoever reads a public key cannot sign with it.

Transition from the HMAC era: a manifest signed with the former shared HMAC-SHA256 key verifies
only while that key is configured as `ITFF_ARTIFACT_LEGACY_HMAC_KEY`; `itff artifacts resign`
re-signs a registry with the Ed25519 key, after which the legacy key is dropped.

A statement is signed over its canonical JSON (keys sorted, no spaces, ASCII, without its
`signature` member), so the signature is generic over whatever the statement lists.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bot.contracts import ConfigError, IntegrityError

PRIVATE_PREFIX = "ed25519sk_"
PUBLIC_PREFIX = "ed25519pk_"
ED25519 = "Ed25519"
LEGACY_HMAC = "HMAC-SHA256"
MIN_LEGACY_KEY_BYTES = 16
_RAW_KEY_BYTES = 32


class SignatureError(IntegrityError):
    """A statement is unsigned, or signed by no trusted key."""


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(text: str, prefix: str, variable: str, what: str) -> bytes:
    body = text.strip().removeprefix(prefix)
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if not text.strip().startswith(prefix) or len(raw) != _RAW_KEY_BYTES:
        raise ConfigError(
            f"{variable} is not an {what} ({prefix}... as `itff artifacts keygen` prints it)"
        )
    return raw


def key_id(public: Ed25519PublicKey) -> str:
    """A fingerprint naming a public key (to tell rotated keys apart)."""
    return hashlib.sha256(public.public_bytes_raw()).hexdigest()[:16]


def public_text(public: Ed25519PublicKey) -> str:
    return PUBLIC_PREFIX + _encode(public.public_bytes_raw())


def generate_keypair() -> tuple[str, str]:
    """A new (private, public) pair in the text form of the settings."""
    private = Ed25519PrivateKey.generate()
    return PRIVATE_PREFIX + _encode(private.private_bytes_raw()), public_text(private.public_key())


def parse_private_key(text: str, variable: str = "ITFF_ARTIFACT_SIGNING_KEY") -> Ed25519PrivateKey:
    raw = _decode(text, PRIVATE_PREFIX, variable, "Ed25519 private key")
    return Ed25519PrivateKey.from_private_bytes(raw)


def parse_public_key(text: str, variable: str = "ITFF_ARTIFACT_PUBLIC_KEYS") -> Ed25519PublicKey:
    raw = _decode(text, PUBLIC_PREFIX, variable, "Ed25519 public key")
    return Ed25519PublicKey.from_public_bytes(raw)


class Signer:
    """Signs canonical statements with the Ed25519 private key."""

    def __init__(self, private_key: str) -> None:
        self._key = parse_private_key(private_key)
        self.public_key = self._key.public_key()
        self.key_id = key_id(self.public_key)

    def sign(self, body: bytes) -> dict[str, str]:
        value = base64.b64encode(self._key.sign(body)).decode()
        return {"algorithm": ED25519, "key_id": self.key_id, "value": value}


@dataclass(frozen=True, slots=True)
class Verifier:
    """The trusted public keys (and, during the transition, the legacy HMAC key).

    Without any key (development only: production refuses to start so) statements are accepted
    unsigned and only checksums protect the files.
    """

    public_keys: tuple[Ed25519PublicKey, ...] = ()
    legacy_hmac_key: bytes | None = None

    @classmethod
    def of(
        cls,
        public_keys: Iterable[str] = (),
        *,
        signer: Signer | None = None,
        legacy_hmac_key: bytes | None = None,
    ) -> Verifier:
        keys = [parse_public_key(text) for text in public_keys]
        if signer is not None:
            keys.append(signer.public_key)
        if legacy_hmac_key is not None and len(legacy_hmac_key) < MIN_LEGACY_KEY_BYTES:
            raise ConfigError(
                f"ITFF_ARTIFACT_LEGACY_HMAC_KEY must be at least {MIN_LEGACY_KEY_BYTES} bytes: "
                "it is the former ITFF_ARTIFACT_SIGNING_KEY, unchanged"
            )
        unique = {key.public_bytes_raw(): key for key in keys}
        return cls(tuple(unique.values()), legacy_hmac_key)

    @property
    def enabled(self) -> bool:
        return bool(self.public_keys) or self.legacy_hmac_key is not None

    @property
    def key_ids(self) -> list[str]:
        return [key_id(key) for key in self.public_keys]

    def check(self, body: bytes, signature: Any, *, what: str) -> bool:
        """Raise `SignatureError` unless `signature` (of `body`) is by a trusted key; whether the
        statement was signed (False only when no key is configured)."""
        if not self.enabled:
            return isinstance(signature, dict)
        if not isinstance(signature, dict) or not isinstance(signature.get("value"), str):
            raise SignatureError(
                f"{what} is unsigned; an unsigned statement is never trusted when keys are "
                "configured: re-publish it with the signing key"
            )
        if signature.get("algorithm") == LEGACY_HMAC:
            self._check_legacy(body, signature["value"], what)
            return True
        if signature.get("algorithm") != ED25519:
            algorithm = signature.get("algorithm")
            raise SignatureError(f"{what}: unknown signature algorithm {algorithm!r}")
        try:
            value = base64.b64decode(signature["value"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SignatureError(f"{what}: the signature is not base64") from exc
        for public in self.public_keys:
            try:
                public.verify(value, body)
            except InvalidSignature:
                continue
            return True
        trusted = ", ".join(self.key_ids) or "none"
        hint = (
            f"it was signed by key {signature.get('key_id')}, which is not in "
            f"ITFF_ARTIFACT_PUBLIC_KEYS (trusted: {trusted})"
            if signature.get("key_id") not in self.key_ids
            else "it was edited after signing"
        )
        raise SignatureError(f"{what}: the signature does not verify: {hint}")

    def _check_legacy(self, body: bytes, value: str, what: str) -> None:
        if self.legacy_hmac_key is None:
            raise SignatureError(
                f"{what} is signed with the retired HMAC key: re-sign the registry "
                "(`itff artifacts resign`), or set ITFF_ARTIFACT_LEGACY_HMAC_KEY during the "
                "transition"
            )
        expected = hmac.new(self.legacy_hmac_key, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, value):
            raise SignatureError(
                f"{what}: the HMAC signature does not verify with ITFF_ARTIFACT_LEGACY_HMAC_KEY: "
                "it was edited after signing or signed with another key"
            )


def legacy_hmac_signature(key: bytes, body: bytes) -> dict[str, str]:
    """An HMAC-era signature (what releases before Ed25519 wrote); tests and `resign` read it."""
    value = hmac.new(key, body, hashlib.sha256).hexdigest()
    legacy_id = hmac.new(key, b"itff artifact key id", hashlib.sha256).hexdigest()[:16]
    return {"algorithm": LEGACY_HMAC, "key_id": legacy_id, "value": value}
