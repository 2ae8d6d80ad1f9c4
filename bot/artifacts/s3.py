"""Artifact versions in S3-compatible object storage (AWS S3, Cloudflare R2, MinIO).

The bucket mirrors the registry's layout under a prefix, so that a plain HTTPS base URL
(`ITFF_ARTIFACT_BASE_URL`, e.g. an R2 custom domain) or pre-signed GET URLs serve the same files
that `ArtifactRegistry.install` verifies:

    {prefix}/{key}/{version}/meta.json, model.joblib, manifest.json
    {prefix}/{key}/CHAMPION      the signed pointer, copied verbatim from the registry
    {prefix}/index.json          {"champions": {key: version}, "pointers": {key: signed pointer}}

Only versions that verify locally are pushed. Within a version the manifest is written last and
the CHAMPION pointer after every version, so a reader never sees a pointer to an incomplete
version. A version already in the bucket with the same manifest is skipped; one with a different
manifest is refused (versions are immutable).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.artifacts.format import ARTIFACT_FILES, CHAMPION_FILE, MANIFEST_FILE
from bot.artifacts.pointers import pointer_version
from bot.artifacts.registry import ArtifactRegistry
from bot.contracts import ConfigError, IntegrityError, NotFound, TransientError
from bot.runtime import get_logger

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from bot.contracts import Settings

log = get_logger(__name__)
INDEX_FILE = "index.json"
SHA256_METADATA = "sha256"
_CONTENT_TYPES = {".json": "application/json", ".joblib": "application/octet-stream"}


@dataclass(frozen=True, slots=True)
class PushedVersion:
    key: str
    version: str
    uploaded: bool  # False when the bucket already held this exact version


@dataclass(slots=True)
class PushReport:
    versions: list[PushedVersion] = field(default_factory=list)
    champions: dict[str, str] = field(default_factory=dict)

    @property
    def uploaded(self) -> list[PushedVersion]:
        return [v for v in self.versions if v.uploaded]


def make_client(settings: Settings) -> S3Client:
    """A boto3 S3 client for `ITFF_S3_*`; path-style addressing for custom endpoints (MinIO)."""
    import boto3
    from botocore.config import Config

    if not settings.s3_bucket:
        raise ConfigError("ITFF_S3_BUCKET is not set: name the bucket that holds the artifacts")
    secret = settings.s3_secret_access_key
    config = Config(
        signature_version="s3v4",
        retries={"max_attempts": 5, "mode": "standard"},
        s3={"addressing_style": "path" if settings.s3_endpoint_url else "auto"},
        # R2 and MinIO accept what S3 requires; newer default checksums are not sent unasked.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url or None,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id or None,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
        config=config,
    )


class ArtifactBucket:
    """One bucket and prefix holding artifact versions in the registry's layout."""

    def __init__(self, client: S3Client, bucket: str, prefix: str = "") -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def object_key(self, *parts: str) -> str:
        return "/".join(part for part in (self.prefix, *parts) if part)

    def push(self, registry: ArtifactRegistry, keys: Iterable[str] | None = None) -> PushReport:
        """Upload every verified version of `keys` (all keys by default) and their champions."""
        names = list(keys) if keys is not None else registry.keys()
        if not names:
            raise NotFound(f"no artifacts under {registry.root}: train and publish a model first")
        report = PushReport()
        pointers: dict[str, bytes] = {}
        for key in names:
            self._refuse_unverified(registry, key)
            for info in registry.versions(key):
                report.versions.append(self._push_version(info.path, key, info.version))
            pointer = registry.pointer(key)
            if pointer:
                self._put(self.object_key(key, CHAMPION_FILE), pointer.raw)
                report.champions[key] = pointer.version
                pointers[key] = pointer.raw
        self._update_index(report.champions, pointers)
        return report

    def remote_versions(self, key: str) -> list[str]:
        """Versions of `key` in the bucket that have a manifest (complete uploads)."""
        found: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.object_key(key) + "/"):
            for item in page.get("Contents", []):
                parts = item["Key"].rsplit("/", 2)
                if len(parts) == 3 and parts[2] == MANIFEST_FILE:  # noqa: PLR2004
                    found.append(parts[1])
        return sorted(found)

    def remote_index(self) -> dict[str, str]:
        """`{key: champion version}` from the bucket's index.json ({} when there is none)."""
        data = self._get(self.object_key(INDEX_FILE))
        try:
            champions = json.loads(data).get("champions", {}) if data else {}
            return {str(key): str(version) for key, version in dict(champions).items()}
        except (ValueError, AttributeError, TypeError) as exc:
            raise IntegrityError(
                f"s3://{self.bucket}/{self.object_key(INDEX_FILE)} is not a valid index ({exc}); "
                "re-run `itff artifacts push`"
            ) from exc

    def remote_champion(self, key: str) -> str | None:
        data = self._get(self.object_key(key, CHAMPION_FILE))
        return pointer_version(data) if data is not None else None  # verified when fetched

    def presign(self, key: str, version: str | None = None, *, expires: int) -> dict[str, str]:
        """Pre-signed GET URLs of one version's files (the remote champion by default), by name."""
        version = version or self.remote_champion(key)
        if version is None:
            raise NotFound(f"the bucket has no champion for {key}; push it first")
        if version not in self.remote_versions(key):
            raise NotFound(f"the bucket has no complete version {key}/{version}; push it first")
        urls = {
            name: self.presign_object(key, version, name, expires=expires)
            for name in (*self._listed_files(key, version), MANIFEST_FILE)
        }
        return {**urls, CHAMPION_FILE: self.presign_object(key, CHAMPION_FILE, expires=expires)}

    def _listed_files(self, key: str, version: str) -> list[str]:
        """The files the remote manifest lists (the compiled ones too, where present)."""
        raw = self._get(self.object_key(key, version, MANIFEST_FILE))
        try:
            files = json.loads(raw or b"{}").get("files", {})
        except (ValueError, AttributeError) as exc:
            raise IntegrityError(f"the bucket's manifest of {key}/{version} is unreadable") from exc
        return sorted({*ARTIFACT_FILES, *files})

    def presign_object(self, *parts: str, expires: int) -> str:
        """A pre-signed GET URL of `{prefix}/{parts...}`, valid for `expires` seconds."""
        return self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.object_key(*parts)},
            ExpiresIn=expires,
        )

    # ---- internals ----------------------------------------------------------------------------

    def _refuse_unverified(self, registry: ArtifactRegistry, key: str) -> None:
        broken = [r for r in registry.verify(key) if not r.ok]
        if broken:
            detail = "; ".join(f"{r.key}/{r.version}: {r.problem}" for r in broken)
            raise IntegrityError(
                f"refusing to push {key}: {detail}; run `itff artifacts verify` and re-publish or "
                "prune the broken versions first"
            )

    def _push_version(self, folder: Path, key: str, version: str) -> PushedVersion:
        manifest = (folder / MANIFEST_FILE).read_bytes()
        manifest_key = self.object_key(key, version, MANIFEST_FILE)
        remote = self._get(manifest_key)
        if remote == manifest:
            return PushedVersion(key, version, uploaded=False)
        if remote is not None:
            raise IntegrityError(
                f"the bucket already holds {key}/{version} with another manifest; versions are "
                "immutable: investigate before overwriting (see docs/runbooks/incident-response.md)"
            )
        for name in sorted(json.loads(manifest).get("files", ARTIFACT_FILES)):
            self._put(self.object_key(key, version, name), (folder / name).read_bytes())
        self._put(manifest_key, manifest)
        return PushedVersion(key, version, uploaded=True)

    def _update_index(self, champions: dict[str, str], pointers: dict[str, bytes]) -> None:
        """index.json lists the keys, and each key's signed pointer: it says nothing a reader
        trusts without verifying that pointer (a writer of the bucket can drop a key, not forge
        or roll back one)."""
        index_key = self.object_key(INDEX_FILE)
        current = self._get(index_key)
        document: dict[str, Any] = json.loads(current) if current else {}
        merged = {**document.get("champions", {}), **champions}
        signed = {**document.get("pointers", {})}
        signed.update({key: json.loads(raw) for key, raw in pointers.items() if raw[:1] == b"{"})
        body = {"champions": dict(sorted(merged.items())), "pointers": dict(sorted(signed.items()))}
        self._put(index_key, json.dumps(body, indent=2).encode() + b"\n")

    def _put(self, object_key: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        suffix = Path(object_key).suffix
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=object_key,
                Body=data,
                ContentType=_CONTENT_TYPES.get(suffix, "text/plain"),
                CacheControl="no-cache" if suffix != ".joblib" else "max-age=31536000, immutable",
                Metadata={SHA256_METADATA: hashlib.sha256(data).hexdigest()},
            )
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(
                f"upload of s3://{self.bucket}/{object_key} failed ({exc}); check ITFF_S3_* and "
                "retry `itff artifacts push` (it skips what is already there)"
            ) from exc

    def _get(self, object_key: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.get_object(Bucket=self.bucket, Key=object_key)
            return response["Body"].read()
        except ClientError as exc:
            if _missing(exc):
                return None
            raise TransientError(f"cannot read s3://{self.bucket}/{object_key}: {exc}") from exc
        except BotoCoreError as exc:  # endpoint unreachable, timeouts, bad credentials chain
            raise TransientError(f"cannot read s3://{self.bucket}/{object_key}: {exc}") from exc


def _missing(exc: Any) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound"}


def bucket_from_settings(settings: Settings) -> ArtifactBucket:
    return ArtifactBucket(make_client(settings), str(settings.s3_bucket), settings.s3_prefix)


def push_if_configured(
    settings: Settings, registry: ArtifactRegistry, keys: Iterable[str] | None = None
) -> PushReport | None:
    """Push `keys` when `ITFF_S3_BUCKET` is set (after a promotion or a rollback), else nothing.

    Blocking (boto3): call it through `asyncio.to_thread` from async code.
    """
    if not settings.s3_bucket:
        return None
    return bucket_from_settings(settings).push(registry, keys)
