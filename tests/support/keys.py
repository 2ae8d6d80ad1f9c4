"""Fixed Ed25519 key pairs for tests (derived from public seeds: never use them anywhere else)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bot.artifacts import public_text


def keypair(seed: str) -> tuple[str, str]:
    """(private, public) in the settings' text form, the same for the same seed."""
    raw = hashlib.sha256(f"itff test key {seed}".encode()).digest()
    private = Ed25519PrivateKey.from_private_bytes(raw)
    text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return f"ed25519sk_{text}", public_text(private.public_key())


SIGNING_KEY, PUBLIC_KEY = keypair("scheduler")
OTHER_SIGNING_KEY, OTHER_PUBLIC_KEY = keypair("another scheduler")
