"""`itff artifacts push`: upload verified artifact versions to S3-compatible storage (registered
with its group by `bot.cli.artifacts`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

PUSH_HELP = (
    "Upload the verified versions of KEY (every key by default) with their manifests and champion "
    "pointers to ITFF_S3_BUCKET (S3, Cloudflare R2, MinIO); optionally write pre-signed GET URLs."
)


def push(
    key: Annotated[
        list[str] | None, typer.Option("--key", "-k", help="model key (repeatable)")
    ] = None,
    urls_file: Annotated[
        Path | None,
        typer.Option(help="write pre-signed GET URLs of each pushed champion to this JSON file"),
    ] = None,
    expires: Annotated[
        int | None,
        typer.Option(min=1, max=604800, help="URL lifetime in s (ITFF_S3_PRESIGN_SECONDS)"),
    ] = None,
) -> None:
    """Upload artifact versions to object storage."""
    from bot.artifacts import registry_from_settings
    from bot.artifacts.s3 import bucket_from_settings
    from bot.contracts import load_settings

    settings = load_settings()
    bucket = bucket_from_settings(settings)
    report = bucket.push(registry_from_settings(settings), keys=key or None)
    for item in report.versions:
        state = "uploaded" if item.uploaded else "already there"
        typer.echo(f"{item.key}/{item.version}: {state}")
    for name, version in report.champions.items():
        typer.echo(f"{name}: champion {version} -> s3://{bucket.bucket}/{bucket.object_key(name)}/")
    if urls_file is not None:
        lifetime = expires or settings.s3_presign_seconds
        urls = {
            name: {"version": version, "urls": bucket.presign(name, version, expires=lifetime)}
            for name, version in report.champions.items()
        }
        urls_file.write_text(json.dumps(urls, indent=2) + "\n", encoding="utf-8")
        urls_file.chmod(0o600)  # pre-signed URLs grant read access until they expire
        typer.echo(f"pre-signed URLs valid for {lifetime} s written to {urls_file}")
