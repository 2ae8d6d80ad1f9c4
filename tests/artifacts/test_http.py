"""Remote fetch against a real aiohttp server that serves a real (signed) registry folder."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.artifacts import (
    ArtifactRegistry,
    FetchResult,
    PresignedUrls,
    RemoteOptions,
    Signer,
    fetch_many,
    make_manifest,
)
from bot.contracts import BadInput, ConfigError, IntegrityError, NotFound, TransientError
from tests.support.bundles import make_bundle, training_inputs
from tests.support.keys import OTHER_SIGNING_KEY, PUBLIC_KEY, SIGNING_KEY

KEY = "SPX-direction-logreg"
TOKEN = "sv=2025&sig=a%2Fb%3D"  # a pre-signed query: must reach the server byte for byte
FAST = RemoteOptions(retries=2, backoff=0.01)
V1, V2 = "20260101T000000Z-0001", "20260102T000000Z-0001"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ServerFactory = Callable[..., Awaitable[TestServer]]


class Mirror:
    """The HTTP side: a static route over a registry root, with switchable faults."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: Counter[str] = Counter()
        self.fail_first: dict[str, int] = {}
        self.corrupt: set[str] = set()
        self.truncate: set[str] = set()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._faults])
        app.router.add_static("/artifacts", self.root)
        return app

    @web.middleware
    async def _faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        name = request.path.rsplit("/", 1)[-1]
        self.requests[name] += 1
        if request.raw_path.partition("?")[2] != TOKEN:
            return web.Response(status=403, text="bad signature")
        if self.fail_first.get(name, 0) >= self.requests[name]:
            return web.Response(status=503, headers={"Retry-After": "0"})
        if name in self.corrupt | self.truncate:
            data = bytearray((self.root / request.path.removeprefix("/artifacts/")).read_bytes())
            if name in self.corrupt:
                data[len(data) // 2] ^= 0x01
            return web.Response(body=bytes(data[:-10] if name in self.truncate else data))
        return await handler(request)


@pytest.fixture
def publisher(tmp_path: Path) -> ArtifactRegistry:
    registry = ArtifactRegistry(tmp_path / "published", signing_key=SIGNING_KEY)
    for version, seed in ((V1, 1), (V2, 2)):
        registry.publish(make_bundle(version=version, seed=seed))
    registry.promote(KEY, V1)
    return registry


@pytest.fixture
def local(tmp_path: Path) -> ArtifactRegistry:
    return ArtifactRegistry(tmp_path / "local", public_keys=[PUBLIC_KEY])


@pytest.fixture
async def mirror(publisher: ArtifactRegistry, aiohttp_server: ServerFactory) -> tuple[Mirror, str]:
    mirror = Mirror(publisher.root)
    server = await aiohttp_server(mirror.app())
    return mirror, f"http://{server.host}:{server.port}/artifacts/?{TOKEN}"


async def fetch(local: ArtifactRegistry, base: str) -> FetchResult:
    result = (await fetch_many(local, base, [KEY], options=FAST))[KEY]
    if isinstance(result, Exception):
        raise result
    return result


def nothing_installed(local: ArtifactRegistry) -> bool:
    staging = local.root / ".staging"
    leftovers = list(staging.iterdir()) if staging.exists() else []
    return local.keys() == [] and leftovers == [] and local.champion(KEY) is None


async def test_fetch_installs_and_promotes_the_verified_champion(
    publisher: ArtifactRegistry, local: ArtifactRegistry, mirror: tuple[Mirror, str]
) -> None:
    _, base = mirror
    result = await fetch(local, base)
    assert (result.version, result.installed, result.promoted) == (V1, True, True)
    assert result.sha256 == publisher.info(KEY, V1).sha256
    assert local.champion(KEY) == V1
    X = training_inputs(2, 3, seed=4, n=8)
    np.testing.assert_array_equal(
        local.load(KEY).pipeline.predict_proba(X), publisher.load(KEY).pipeline.predict_proba(X)
    )
    again = await fetch(local, base)
    assert (again.installed, again.promoted) == (False, False)


async def test_a_new_remote_champion_is_fetched_and_the_old_kept_for_rollback(
    publisher: ArtifactRegistry, local: ArtifactRegistry, mirror: tuple[Mirror, str]
) -> None:
    _, base = mirror
    await fetch(local, base)
    publisher.promote(KEY, V2)
    assert (await fetch(local, base)).version == V2
    assert local.champion(KEY) == V2
    assert local.rollback_target(KEY) == V1
    with pytest.raises(ConfigError, match="needs ITFF_ARTIFACT_SIGNING_KEY"):
        local.rollback(KEY)  # a consumer only verifies: rollbacks are signed on the scheduler
    assert publisher.rollback(KEY) == V1
    assert (await fetch(local, base)).version == V1
    assert local.pointer(KEY).sequence == 3  # type: ignore[union-attr]


async def test_a_bucket_writers_rollback_is_refused(
    publisher: ArtifactRegistry, local: ArtifactRegistry, mirror: tuple[Mirror, str]
) -> None:
    """Whoever can write the bucket replays the older, validly signed pointer of V1."""
    _, base = mirror
    pointer_path = publisher.root / KEY / "CHAMPION"
    old_pointer = pointer_path.read_bytes()  # sequence 1, V1, signed by the scheduler
    publisher.promote(KEY, V2)
    assert (await fetch(local, base)).version == V2
    pointer_path.write_bytes(old_pointer)
    with pytest.raises(IntegrityError, match="older pointer replayed"):
        await fetch(local, base)
    assert local.champion(KEY) == V2
    fresh = ArtifactRegistry(local.root, public_keys=[PUBLIC_KEY])  # a restarted consumer too
    with pytest.raises(IntegrityError, match="older pointer replayed"):
        await fetch(fresh, base)
    assert fresh.champion(KEY) == V2


async def test_a_pointer_forged_or_copied_from_another_key_is_refused(
    publisher: ArtifactRegistry, local: ArtifactRegistry, mirror: tuple[Mirror, str]
) -> None:
    _, base = mirror
    pointer_path = publisher.root / KEY / "CHAMPION"
    document = json.loads(pointer_path.read_bytes())
    document["sequence"] = 99
    pointer_path.write_text(json.dumps(document))
    with pytest.raises(IntegrityError, match="edited after signing"):
        await fetch(local, base)
    other = "NDX-direction-logreg"
    publisher.publish(make_bundle(symbol="NDX", version=V1))
    publisher.promote(other, V1)
    pointer_path.write_bytes((publisher.root / other / "CHAMPION").read_bytes())
    with pytest.raises(IntegrityError, match="copied"):
        await fetch(local, base)
    pointer_path.write_text(f"{V2}\n")  # a one-line pointer of an earlier release
    with pytest.raises(IntegrityError, match="unsigned pointer"):
        await fetch(local, base)
    assert nothing_installed(local)


async def test_a_consumer_refuses_a_replayed_pointer_on_its_own_disk(
    publisher: ArtifactRegistry,
) -> None:
    """A consumer sharing the scheduler's volume: the served sequence never goes back."""
    reader = ArtifactRegistry(publisher.root, public_keys=[PUBLIC_KEY])
    pointer_path = publisher.root / KEY / "CHAMPION"
    old_pointer = pointer_path.read_bytes()
    publisher.promote(KEY, V2)
    assert reader.champion(KEY) == V2
    pointer_path.write_bytes(old_pointer)
    with pytest.raises(IntegrityError, match="older pointer replayed"):
        reader.champion(KEY)


async def test_a_corrupted_download_is_refused_and_nothing_installed(
    local: ArtifactRegistry, mirror: tuple[Mirror, str]
) -> None:
    server, base = mirror
    server.corrupt.add("model.joblib")
    with pytest.raises(
        IntegrityError, match=r"model\.joblib is corrupted .* nothing was installed"
    ):
        await fetch(local, base)
    assert nothing_installed(local)
    assert local.champion(KEY) is None


async def test_a_truncated_download_is_refused(
    local: ArtifactRegistry, mirror: tuple[Mirror, str]
) -> None:
    server, base = mirror
    server.truncate.add("meta.json")
    with pytest.raises(IntegrityError, match=r"meta\.json is corrupted"):
        await fetch(local, base)
    assert nothing_installed(local)


async def test_a_forged_manifest_is_refused_before_any_file_is_downloaded(
    publisher: ArtifactRegistry, local: ArtifactRegistry, mirror: tuple[Mirror, str]
) -> None:
    server, base = mirror
    folder = publisher.root / KEY / V1
    files = {name: (folder / name).read_bytes() for name in ("meta.json", "model.joblib")}
    forged, _ = make_manifest(KEY, V1, files, Signer(OTHER_SIGNING_KEY))
    (folder / "manifest.json").write_bytes(forged)
    with pytest.raises(IntegrityError, match="not in ITFF_ARTIFACT_PUBLIC_KEYS"):
        await fetch(local, base)
    assert server.requests["model.joblib"] == 0
    assert nothing_installed(local)


async def test_transient_errors_are_retried_then_reported(
    local: ArtifactRegistry, mirror: tuple[Mirror, str]
) -> None:
    server, base = mirror
    server.fail_first["CHAMPION"] = 2
    assert (await fetch(local, base)).version == V1
    assert server.requests["CHAMPION"] == 3
    server.fail_first["CHAMPION"] = 100
    with pytest.raises(TransientError, match=r"after 3 attempts \(HTTP 503\)"):
        await fetch(local, base)


async def test_query_tokens_never_appear_in_errors(
    local: ArtifactRegistry, mirror: tuple[Mirror, str]
) -> None:
    _, base = mirror
    with pytest.raises(ConfigError, match="denied") as denied:
        await fetch(local, base.replace("sig=", "sig=x"))
    assert "sig=" not in str(denied.value)
    assert "a%2Fb" not in str(denied.value)


async def test_unknown_keys_are_reported_per_key(
    local: ArtifactRegistry, mirror: tuple[Mirror, str]
) -> None:
    _, base = mirror
    results = await fetch_many(local, base, ["NDX-direction-logreg", KEY], options=FAST)
    assert isinstance(results["NDX-direction-logreg"], NotFound)
    assert isinstance(results[KEY], FetchResult)


async def test_the_remote_index_names_the_keys(
    publisher: ArtifactRegistry, local: ArtifactRegistry, mirror: tuple[Mirror, str]
) -> None:
    _, base = mirror
    with pytest.raises(NotFound, match=r"no index\.json"):
        await fetch_many(local, base, None, options=FAST)
    (publisher.root / "index.json").write_text(json.dumps({"champions": {KEY: V1}}))
    assert list(await fetch_many(local, base, None, options=FAST)) == [KEY]


async def test_a_base_url_that_is_not_http_is_a_configuration_error(
    local: ArtifactRegistry,
) -> None:
    with pytest.raises(ConfigError, match="must be an http"):
        await fetch_many(local, "file:///srv/artifacts", [KEY])


async def test_per_file_presigned_urls_install_the_champion(
    publisher: ArtifactRegistry, local: ArtifactRegistry, mirror: tuple[Mirror, str]
) -> None:
    server, base = mirror
    root = base.partition("?")[0]
    publisher.promote(KEY, V2)
    names = sorted(p.name for p in (publisher.root / KEY / V2).iterdir())  # compiled files too
    urls = {n: f"{root}{KEY}/{V2}/{n}?{TOKEN}" for n in names}
    without_pointer = {KEY: {"version": V2, "urls": urls}}  # a URL file of an earlier release
    [old] = (await fetch_many(local, PresignedUrls(without_pointer), None, options=FAST)).values()
    assert isinstance(old, IntegrityError)
    assert "unsigned pointer" in str(old)
    urls["CHAMPION"] = f"{root}{KEY}/CHAMPION?{TOKEN}"
    document = {KEY: {"version": V2, "urls": urls}}
    [result] = (await fetch_many(local, PresignedUrls(document), None, options=FAST)).values()
    assert isinstance(result, FetchResult)
    assert (result.version, local.champion(KEY)) == (V2, V2)
    assert result.sha256 == publisher.info(KEY, V2).sha256
    assert server.requests["CHAMPION"] == 1  # the signed pointer, not the URL file, decides
    server.corrupt.add("model.joblib")
    publisher.rollback(KEY)
    document[KEY]["version"] = V1
    document[KEY]["urls"] = {n: f"{root}{KEY}/{V1}/{n}?{TOKEN}" for n in names} | {
        "CHAMPION": urls["CHAMPION"]
    }
    [refused] = (await fetch_many(local, PresignedUrls(document), [KEY], options=FAST)).values()
    assert isinstance(refused, IntegrityError)
    assert [v.version for v in local.versions(KEY)] == [V2]


@pytest.mark.parametrize(
    "document",
    [[], {}, {KEY: {"version": V1}}, {KEY: {"urls": {}}}, {"a/b": {"version": V1, "urls": {}}}],
)
def test_a_malformed_url_file_is_refused(document: object) -> None:
    with pytest.raises(BadInput):
        PresignedUrls(document)
