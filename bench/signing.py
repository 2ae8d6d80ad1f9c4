"""Cost of trust: verifying a manifest and a champion pointer (Ed25519 against the former
HMAC-SHA256), and reading a champion through the signed pointer. Prints figures; asserts nothing.

    .venv/bin/python bench/signing.py [--repeat 2000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bot.artifacts import ArtifactRegistry, Signer, Verifier, generate_keypair
from bot.artifacts.format import canonical
from bot.artifacts.signing import legacy_hmac_signature
from tests.support.bundles import make_bundle

HMAC_KEY = b"bench-legacy-hmac-key-0123456789"


def per_call_us(action: Callable[[], object], repeat: int) -> float:
    action()
    started = time.perf_counter()
    for _ in range(repeat):
        action()
    return (time.perf_counter() - started) / repeat * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2000)
    repeat = parser.parse_args().repeat
    private, public = generate_keypair()
    with tempfile.TemporaryDirectory() as folder:
        scheduler = ArtifactRegistry(Path(folder), private)
        bundle = make_bundle()
        scheduler.publish(bundle)
        scheduler.promote(bundle.key, bundle.version)
        consumer = ArtifactRegistry(Path(folder), public_keys=[public])
        manifest = json.loads(
            (Path(folder) / bundle.key / bundle.version / "manifest.json").read_text()
        )
        manifest.pop("signature")
        body = canonical(manifest)
        ed25519 = Signer(private).sign(body)
        legacy = legacy_hmac_signature(HMAC_KEY, body)
        verifier = Verifier.of([public], legacy_hmac_key=HMAC_KEY)
        figures = {
            "Ed25519 sign (scheduler)": per_call_us(lambda: Signer(private).sign(body), repeat),
            "Ed25519 verify": per_call_us(lambda: verifier.check(body, ed25519, what="m"), repeat),
            "HMAC-SHA256 verify (legacy)": per_call_us(
                lambda: verifier.check(body, legacy, what="m"), repeat
            ),
            "champion pointer read (bytes seen: verified once)": per_call_us(
                lambda: consumer.champion(bundle.key), repeat
            ),
            "version check (manifest + checksums)": per_call_us(
                lambda: consumer.check_version(bundle.key, bundle.version), repeat // 4 or 1
            ),
        }
    print(f"artifact trust, {repeat} repeats (manifest of {len(body)} bytes)")
    for name, value in figures.items():
        print(f"  {name:40s} {value:9.1f} us")


if __name__ == "__main__":
    main()
