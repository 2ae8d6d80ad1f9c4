"""Fetch champions from `ITFF_ARTIFACT_BASE_URL` into the local registry, verified, atomically.

The remote side mirrors the registry layout (`bot.artifacts.s3` pushes exactly this to a bucket):

    {base}/{key}/CHAMPION                       the signed pointer naming the version to fetch
    {base}/{key}/{version}/manifest.json        checked first (signature when a key is set)
    {base}/{key}/{version}/meta.json, model.joblib
    {base}/index.json                           optional: {"champions": {key: version}, ...}

A query string on the base (a container-wide pre-signed token such as an Azure SAS) is appended,
byte for byte, to every file URL. Each file is streamed into a staging folder under the registry
root with its size capped by the manifest and its SHA-256 checked; the registry then re-verifies
the whole version and renames it into place, so a corrupted or forged download installs nothing.
The fetched pointer is verified (signature, key, sequence not lower than the local one: a replayed
older pointer is refused) and copied verbatim: the fetched version becomes the local champion (the
former one stays for rollback).

This is the one module of `bot/` that uses aiohttp (the HTTP client).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from yarl import URL

from bot.artifacts.format import (
    CHAMPION_FILE,
    MANIFEST_FILE,
    ArtifactIntegrityError,
    Manifest,
    check_name,
)
from bot.artifacts.pointers import parse_pointer, refuse_older
from bot.artifacts.registry import ArtifactRegistry
from bot.contracts import BadInput, ConfigError, ItffError, NotFound, TransientError
from bot.runtime import get_logger

log = get_logger(__name__)
T = TypeVar("T")
CHUNK_BYTES = 1 << 16
MAX_POINTER_BYTES = 4096
MAX_MANIFEST_BYTES = 1 << 20
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RemoteOptions:
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = 3  # attempts after the first
    backoff: float = 0.5  # seconds, doubled on each retry
    max_retry_after: float = 30.0


@dataclass(frozen=True, slots=True)
class FetchResult:
    key: str
    version: str
    sha256: str
    installed: bool  # False when the version was already present (and identical)
    promoted: bool  # False when it was already the local champion


class BaseUrl:
    """`{base}/{key}/...`, with the base's query string (a pre-signed token) on every URL."""

    def __init__(self, base_url: str) -> None:
        self._prefix, self._query = _split_base(base_url)

    def url(self, *parts: str) -> URL:
        path = "/".join(quote(part, safe="") for part in parts)
        query = f"?{self._query}" if self._query else ""
        return URL(f"{self._prefix}/{path}{query}", encoded=True)

    def version(self, _key: str) -> str | None:
        return None  # read from {base}/{key}/CHAMPION

    def has_pointer(self, _key: str) -> bool:
        return True

    def keys(self) -> list[str] | None:
        return None  # read from {base}/index.json


class PresignedUrls:
    """One pre-signed URL per file, as `itff artifacts push --urls-file` writes them:
    `{key: {"version": V, "urls": {"manifest.json": URL, "meta.json": URL, "model.joblib": URL}}}`.
    """

    def __init__(self, document: Any) -> None:
        entries = document.items() if isinstance(document, dict) else ()
        self._entries = {check_name(str(k), "model key"): _presigned(v) for k, v in entries}
        if not self._entries:
            raise BadInput(_URL_FILE_SHAPE)

    def url(self, *parts: str) -> URL:
        version, urls = self._entries.get(parts[0], ("", {})) if parts else ("", {})
        if parts[1:] == (CHAMPION_FILE,) and CHAMPION_FILE in urls:
            return URL(urls[CHAMPION_FILE], encoded=True)
        if len(parts) != 3 or parts[1] != version or parts[2] not in urls:  # noqa: PLR2004
            raise NotFound(f"the URL file has no URL for {'/'.join(parts)}")
        _split_base(urls[parts[2]])  # http(s) only
        return URL(urls[parts[2]], encoded=True)

    def version(self, key: str) -> str | None:
        if key not in self._entries:
            raise NotFound(f"the URL file has no entry for {key}; push it with --urls-file again")
        return self._entries[key][0]

    def has_pointer(self, key: str) -> bool:
        return CHAMPION_FILE in self._entries.get(key, ("", {}))[1]

    def keys(self) -> list[str] | None:
        return sorted(self._entries)


_URL_FILE_SHAPE = (
    "the URL file must map each model key to {'version': V, 'urls': {file: url}}, as "
    "`itff artifacts push --urls-file` writes it"
)


def _presigned(entry: Any) -> tuple[str, dict[str, str]]:
    urls = entry.get("urls") if isinstance(entry, dict) else None
    version = entry.get("version") if isinstance(entry, dict) else None
    if not isinstance(urls, dict) or not isinstance(version, str):
        raise BadInput(_URL_FILE_SHAPE)
    return check_name(version, "version"), {str(name): str(url) for name, url in urls.items()}


class RemoteArtifacts:
    """An HTTP(S) mirror of a registry, read with an aiohttp session (timeouts, retries)."""

    def __init__(
        self,
        source: str | BaseUrl | PresignedUrls,
        session: aiohttp.ClientSession,
        options: RemoteOptions | None = None,
    ) -> None:
        self._locator = BaseUrl(source) if isinstance(source, str) else source
        self._session = session
        self._options = options or RemoteOptions()

    def url(self, *parts: str) -> URL:
        return self._locator.url(*parts)

    async def pointer(self, key: str) -> bytes:
        """The remote champion pointer of `key` (verified by the registry that adopts it).

        An old URL file without the pointer's URL yields a legacy pointer (its version), which
        only a registry without keys or in the HMAC transition accepts."""
        if not self._locator.has_pointer(key):
            return f"{self._locator.version(key)}\n".encode()
        url = self.url(key, CHAMPION_FILE)
        return await self._retrying(url, self._read_small(MAX_POINTER_BYTES))

    async def index(self) -> dict[str, str]:
        """`{key: version}` from `{base}/index.json`, or {} when the mirror has none."""
        listed = self._locator.keys()
        if listed is not None:
            return {key: str(self._locator.version(key)) for key in listed}
        try:
            raw = await self._retrying(self.url("index.json"), self._read_small(MAX_MANIFEST_BYTES))
            champions = json.loads(raw).get("champions", {})
        except NotFound:
            return {}
        except (ValueError, AttributeError) as exc:
            raise BadInput(f"{_safe(self.url('index.json'))} is not a valid index: {exc}") from exc
        return {str(key): str(version) for key, version in dict(champions).items()}

    async def manifest(
        self, key: str, version: str, staging: Path, registry: ArtifactRegistry
    ) -> Manifest:
        """Download the manifest into `staging`; authenticated (signature) by the registry."""
        raw = await self._retrying(
            self.url(key, version, MANIFEST_FILE), self._read_small(MAX_MANIFEST_BYTES)
        )
        await asyncio.to_thread((staging / MANIFEST_FILE).write_bytes, raw)
        return await asyncio.to_thread(registry.check_manifest, staging, key, version)

    async def files(self, manifest: Manifest, staging: Path) -> None:
        """Download each file of the manifest, size-capped and hashed while streaming."""
        for name, entry in manifest.files.items():
            url = self.url(manifest.key, manifest.version, name)
            await self._retrying(url, self._to_file(staging / name, entry.size, entry.sha256))

    # ---- HTTP ----------------------------------------------------------------------------

    def _read_small(self, limit: int) -> Callable[[aiohttp.ClientResponse], Awaitable[bytes]]:
        async def read(response: aiohttp.ClientResponse) -> bytes:
            data = await response.content.read(limit + 1)
            if len(data) > limit:
                raise BadInput(f"{_safe(response.url)} is larger than {limit} bytes")
            return data

        return read

    def _to_file(
        self, path: Path, size: int, sha256: str
    ) -> Callable[[aiohttp.ClientResponse], Awaitable[None]]:
        async def save(response: aiohttp.ClientResponse) -> None:
            digest, received = hashlib.sha256(), 0
            with path.open("wb") as handle:
                async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                    received += len(chunk)
                    if received > size:
                        break
                    digest.update(chunk)
                    await asyncio.to_thread(handle.write, chunk)
            if received != size or not hmac.compare_digest(digest.hexdigest(), sha256):
                raise ArtifactIntegrityError(
                    f"download of {_safe(response.url)} is corrupted ({received} bytes, expected "
                    f"{size} with SHA-256 {sha256[:12]}); nothing was installed: retry the fetch, "
                    "and if it persists re-push the version",
                    file=path.name,
                )

        return save

    async def _retrying(
        self, url: URL, handle: Callable[[aiohttp.ClientResponse], Awaitable[T]]
    ) -> T:
        options = self._options
        for attempt in range(options.retries + 1):
            try:
                async with self._session.get(url, timeout=self._timeout()) as response:
                    _raise_for_status(response)
                    return await handle(response)
            except _Retry as exc:
                error: Exception = exc
                delay = exc.retry_after
            except (aiohttp.ClientError, TimeoutError) as exc:
                error, delay = exc, None
            if attempt == options.retries:
                break
            wait = min(delay or options.backoff * 2**attempt, options.max_retry_after)
            log.warning("artifact download failed; retrying", url=_safe(url), error=str(error))
            await asyncio.sleep(wait)
        raise TransientError(
            f"cannot download {_safe(url)} after {options.retries + 1} attempts ({error}); "
            "check ITFF_ARTIFACT_BASE_URL and the network, then retry"
        )

    def _timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=None, sock_connect=self._options.connect_timeout,
            connect=self._options.connect_timeout, sock_read=self._options.read_timeout,
        )  # fmt: skip


class _Retry(Exception):  # noqa: N818 - internal signal, never leaves this module
    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    status, where = response.status, _safe(response.url)
    if status == 200:  # noqa: PLR2004
        return
    if status in RETRY_STATUSES:
        raise _Retry(f"HTTP {status}", _retry_after(response.headers.get("Retry-After")))
    if status == 404:  # noqa: PLR2004
        raise NotFound(f"{where} does not exist (404); is the model published there?")
    if status in {401, 403}:
        raise ConfigError(
            f"access to {where} denied ({status}): check the credentials or the (expired?) "
            "pre-signed query string in ITFF_ARTIFACT_BASE_URL"
        )
    raise BadInput(f"{where} answered HTTP {status}; check ITFF_ARTIFACT_BASE_URL")


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _split_base(base_url: str) -> tuple[str, str]:
    prefix, _, query = base_url.strip().partition("?")
    url = URL(prefix)
    if url.scheme not in {"http", "https"} or not url.host:
        raise ConfigError(
            f"ITFF_ARTIFACT_BASE_URL must be an http(s) URL such as https://host/artifacts, got "
            f"{_safe(URL(prefix))!r}"
        )
    return prefix.rstrip("/"), query


def _safe(url: URL) -> str:
    """The URL without its query: pre-signed tokens never reach a log line or a message."""
    return str(url.with_query(None).with_fragment(None))


# ---- entry points ------------------------------------------------------------------------


async def fetch_champion(
    registry: ArtifactRegistry, remote: RemoteArtifacts, key: str
) -> FetchResult:
    """Install the remote champion of `key` (verified) and make it the local champion."""
    check_name(key, "model key")
    raw = await remote.pointer(key)
    where = f"the remote {key}/{CHAMPION_FILE}"
    pointer = parse_pointer(raw, registry.verifier, key=key, where=where)
    served = registry.pointer(key)
    refuse_older(served, pointer, where=where)  # before downloading anything
    version = pointer.version
    present = version in {info.version for info in registry.versions(key)}
    with registry.staging() as staging:
        manifest = await remote.manifest(key, version, staging, registry)
        if present:  # versions are immutable: the same manifest means the same files
            local = await asyncio.to_thread(registry.check_version, key, version)
            if local != manifest.digest:
                raise ArtifactIntegrityError(
                    f"{key}/{version} differs between the remote and the local registry "
                    f"(manifest digests {manifest.digest[:12]} vs {local[:12]}); investigate "
                    "before deleting either copy",
                    file=MANIFEST_FILE,
                )
        else:
            await remote.files(manifest, staging)
            await asyncio.to_thread(registry.install, staging)
    promoted = served is None or served.version != version
    await asyncio.to_thread(registry.adopt, raw, key)
    log.info("artifact fetched", model_key=key, version=version, installed=not present)
    return FetchResult(key, version, manifest.digest, installed=not present, promoted=promoted)


async def fetch_many(
    registry: ArtifactRegistry,
    source: str | PresignedUrls,
    keys: Iterable[str] | None,
    *,
    options: RemoteOptions | None = None,
) -> dict[str, FetchResult | ItffError]:
    """Fetch each key (or every key of the remote index or URL file) from a base URL or from
    pre-signed URLs; failures are returned per key, not raised."""
    results: dict[str, FetchResult | ItffError] = {}
    async with aiohttp.ClientSession(raise_for_status=False) as session:
        remote = RemoteArtifacts(source, session, options)
        wanted = list(keys) if keys is not None else sorted(await remote.index())
        if not wanted:
            raise NotFound(
                "the remote has no index.json; name the keys to fetch (--key SPX-direction-logreg)"
            )
        for key in wanted:
            try:
                results[key] = await fetch_champion(registry, remote, key)
            except ConfigError:
                raise
            except ItffError as exc:
                results[key] = exc
    return results


def describe(result: FetchResult | ItffError) -> str:
    if isinstance(result, ItffError):
        return f"failed: {result}"
    state = "installed" if result.installed else "already present"
    champion = "now champion" if result.promoted else "already champion"
    return f"{result.version} ({state}, {champion}, sha256 {result.sha256[:12]})"
