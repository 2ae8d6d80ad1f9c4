"""The consumer's start-up step: install the remote champions, verified, or refuse to start.

Where the champions come from, first match wins:

* `ITFF_ARTIFACT_BASE_URL`: an HTTPS mirror of the registry (an R2 custom domain, a public bucket,
  or a base URL carrying a container-wide pre-signed query string);
* `ITFF_S3_BUCKET`: the bucket `itff artifacts push` fills; the consumer signs short-lived GET URLs
  with its (read-only) `ITFF_S3_*` credentials and downloads through them;
* neither: nothing is fetched, the consumer serves the local registry (`ITFF_ARTIFACT_DIR`, e.g. a
  volume shared with the scheduler).

Each champion is checked against its signed manifest before it is installed (`bot.artifacts.http`).
One that fails (a corrupted or forged file, a manifest that does not match, an unreachable mirror)
stops the start-up with one line naming the key and the reason: nothing unverified is served.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from bot.artifacts import (
    ArtifactRegistry,
    FetchResult,
    PresignedUrls,
    RemoteOptions,
    describe,
    fetch_many,
    registry_from_settings,
)
from bot.contracts import IntegrityError, ItffError, NotFound, TransientError
from bot.runtime import get_logger

if TYPE_CHECKING:
    from bot.contracts import Settings

log = get_logger(__name__)


def configured_keys(settings: Settings) -> list[str]:
    """Every model key the settings train (symbol x target x model type, where supported)."""
    from bot.contracts import model_key
    from bot.core import supports

    return [
        model_key(symbol, target, model_type)
        for symbol in settings.symbols
        for target in settings.targets
        for model_type in settings.model_types
        if supports(model_type, target)
    ]


def remote_source(
    settings: Settings, keys: list[str] | None = None
) -> tuple[str | PresignedUrls, str] | None:
    """The champions' source and a description of it for messages, or None (stay local).

    With `ITFF_S3_BUCKET`, URLs are signed for `keys` (default: the bucket's index, else the
    configured keys). Blocking then (boto3 reads and signs): run it in a thread.
    """
    if settings.artifact_base_url:
        return settings.artifact_base_url, "ITFF_ARTIFACT_BASE_URL"
    if not settings.s3_bucket:
        return None
    from bot.artifacts.s3 import bucket_from_settings

    bucket = bucket_from_settings(settings)
    where = f"s3://{bucket.bucket}/{bucket.prefix}"
    champions = (None if keys is not None else bucket.remote_index()) or {
        key: version
        for key in (keys if keys is not None else configured_keys(settings))
        if (version := bucket.remote_champion(key)) is not None
    }
    if not champions:
        raise NotFound(f"{where} holds no champion: run the pipeline and `itff artifacts push`")
    lifetime = settings.s3_presign_seconds
    document = {
        key: {"version": version, "urls": bucket.presign(key, version, expires=lifetime)}
        for key, version in sorted(champions.items())
    }
    return PresignedUrls(document), where


async def pull_champions(
    settings: Settings,
    *,
    registry: ArtifactRegistry | None = None,
    options: RemoteOptions | None = None,
) -> list[FetchResult]:
    """Install and verify the remote champions before serving; raise when any of them fails.

    Returns what was fetched ([] when no remote is configured).
    """
    found = await asyncio.to_thread(remote_source, settings)
    if found is None:
        return []
    source, where = found
    registry = registry or registry_from_settings(settings)
    try:
        results = await fetch_many(registry, source, None, options=options)
    except NotFound:  # the base URL has no index.json: ask for each configured key
        results = await fetch_many(registry, source, configured_keys(settings), options=options)
    return _checked(results, where)


async def pull_key(
    settings: Settings,
    key: str,
    *,
    registry: ArtifactRegistry | None = None,
    options: RemoteOptions | None = None,
) -> FetchResult | None:
    """Install the remote champion of one key (after a `promoted`/`rolled_back` event, on a
    consumer that does not share the scheduler's disk); None when no remote is configured.

    Raises the key's error (`IntegrityError` on a mismatch): the caller keeps serving what it has.
    """
    found = await asyncio.to_thread(remote_source, settings, [key])
    if found is None:
        return None
    source, _where = found
    registry = registry or registry_from_settings(settings)
    result = (await fetch_many(registry, source, [key], options=options))[key]
    if isinstance(result, ItffError):
        raise result
    return result


def _checked(results: dict[str, FetchResult | ItffError], where: str) -> list[FetchResult]:
    fetched = [result for result in results.values() if isinstance(result, FetchResult)]
    failed = {key: error for key, error in results.items() if isinstance(error, ItffError)}
    broken = {key: error for key, error in failed.items() if not isinstance(error, NotFound)}
    for key, result in results.items():
        log.info("champion from the remote", model_key=key, source=where, result=describe(result))
    if broken:
        detail = "; ".join(f"{key}: {error}" for key, error in sorted(broken.items()))
        kind = (
            IntegrityError
            if any(isinstance(e, IntegrityError) for e in broken.values())
            else TransientError
        )
        raise kind(f"refusing to start: champions from {where} failed: {detail}")
    if not fetched:
        raise NotFound(
            f"refusing to start: {where} holds none of the champions "
            f"({', '.join(sorted(failed))}); run the pipeline and `itff artifacts push` first"
        )
    return fetched
