"""`itff artifacts push` against a real S3 API (moto's server mode on a loopback port).

Upload, list, pre-signed download, then the consumer's fetch paths: `bot.artifacts.http.fetch_many`
from
`ITFF_ARTIFACT_BASE_URL` over the bucket, and files fetched through pre-signed URLs, both installed
by the registry only when they verify against their signed manifest.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import typer
from moto.server import ThreadedMotoServer
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from bot.artifacts import (
    ARTIFACT_FILES,
    CHAMPION_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    ArtifactRegistry,
    FetchResult,
    RemoteOptions,
    fetch_many,
    registry_from_settings,
)
from bot.artifacts.s3 import INDEX_FILE, ArtifactBucket, make_client, push_if_configured
from bot.cli import COMMAND_MODULES
from bot.contracts import IntegrityError, Settings, load_settings
from bot.kafka import ModelEventPublisher
from bot.pipeline import run_pipeline
from bot.serving import pull_champions, pull_key
from storage import model_versions as model_repo
from tests.support.bundles import make_bundle
from tests.support.env import child_env
from tests.support.keys import PUBLIC_KEY, SIGNING_KEY
from tests.support.pipeline import write_sample_slice

BUCKET = "itff-artifacts"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_settings(
    settings: Settings,
    s3_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Settings:
    prefix = f"t/{request.node.name}"
    values = {
        "ITFF_S3_ENDPOINT_URL": s3_endpoint,
        "ITFF_S3_BUCKET": BUCKET,
        "ITFF_S3_PREFIX": prefix,
        "ITFF_S3_REGION": "us-east-1",
        "ITFF_S3_ACCESS_KEY_ID": "testing",
        "ITFF_S3_SECRET_ACCESS_KEY": "testing",
        "ITFF_ARTIFACT_DIR": str(settings.artifact_dir),
        "ITFF_ARTIFACT_SIGNING_KEY": SIGNING_KEY,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    configured = load_settings()
    client = make_client(configured)
    if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=BUCKET)
    return configured


def _registry(settings: Settings) -> ArtifactRegistry:
    return ArtifactRegistry(settings.artifact_dir, signing_key=SIGNING_KEY)


def _published(settings: Settings) -> tuple[ArtifactRegistry, str, list[str]]:
    registry = _registry(settings)
    versions = ["20260101T000000Z-0001", "20260102T000000Z-0001"]
    for version in versions:
        bundle = make_bundle(version=version)
        registry.publish(bundle)
    key = make_bundle().key
    registry.promote(key, versions[1])
    return registry, key, versions


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def _fetch_into(registry: ArtifactRegistry, urls: dict[str, str]) -> str:
    """Install one version from pre-signed URLs the way a consumer does at start-up."""
    with registry.staging() as staging:
        for name, url in urls.items():
            (staging / name).write_bytes(_download(url))
        return registry.install(staging).version


def test_push_uploads_versions_manifests_and_champion(s3_settings: Settings) -> None:
    registry, key, versions = _published(s3_settings)
    cli, command = _push_command()
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 0, result.output
    assert f"{key}/{versions[0]}: uploaded" in result.output

    bucket = ArtifactBucket(make_client(s3_settings), BUCKET, s3_settings.s3_prefix)
    assert bucket.remote_versions(key) == versions
    assert bucket.remote_champion(key) == versions[1] == registry.champion(key)
    listed = {
        item["Key"]
        for item in boto3.client(
            "s3",
            endpoint_url=s3_settings.s3_endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).list_objects_v2(Bucket=BUCKET, Prefix=s3_settings.s3_prefix + "/")["Contents"]
    }
    expected = {
        f"{s3_settings.s3_prefix}/{key}/{version}/{name}"
        for version in versions
        for name in (*ARTIFACT_FILES, MANIFEST_FILE)
    }
    assert expected | {f"{s3_settings.s3_prefix}/{key}/{CHAMPION_FILE}"} <= listed
    index = json.loads(_download(bucket.presign_object(INDEX_FILE, expires=60)))
    assert index["champions"] == {key: versions[1]}
    assert index["pointers"][key] == json.loads((registry.root / key / CHAMPION_FILE).read_text())
    assert index["pointers"][key]["signature"]["algorithm"] == "Ed25519"


def test_push_is_idempotent_and_refuses_a_rewritten_version(s3_settings: Settings) -> None:
    registry, _key, versions = _published(s3_settings)
    bucket = ArtifactBucket(make_client(s3_settings), BUCKET, s3_settings.s3_prefix)
    assert [v.uploaded for v in bucket.push(registry).versions] == [True, True]
    assert [v.uploaded for v in bucket.push(registry).versions] == [False, False]

    other = ArtifactBucket(make_client(s3_settings), BUCKET, s3_settings.s3_prefix)
    elsewhere = ArtifactRegistry(s3_settings.artifact_dir.parent / "elsewhere", SIGNING_KEY)
    elsewhere.publish(make_bundle(version=versions[0], seed=7))
    with pytest.raises(IntegrityError, match="another manifest"):
        other.push(elsewhere)


def test_presigned_urls_install_and_verify_the_champion(
    s3_settings: Settings, tmp_path: Path
) -> None:
    registry, key, versions = _published(s3_settings)
    bucket = ArtifactBucket(make_client(s3_settings), BUCKET, s3_settings.s3_prefix)
    bucket.push(registry)

    urls = bucket.presign(key, expires=120)
    assert set(urls) == {
        *ARTIFACT_FILES,
        "serving.json",
        "model.linear.json",
        MANIFEST_FILE,
        CHAMPION_FILE,
    }
    assert all("X-Amz-Signature=" in url for url in urls.values())
    consumer = ArtifactRegistry(tmp_path / "consumer", public_keys=[PUBLIC_KEY])
    assert _fetch_into(consumer, urls) == versions[1]
    assert consumer.load(key, versions[1]).version == versions[1]


def test_a_corrupted_object_is_refused(s3_settings: Settings, tmp_path: Path) -> None:
    registry, key, versions = _published(s3_settings)
    bucket = ArtifactBucket(make_client(s3_settings), BUCKET, s3_settings.s3_prefix)
    bucket.push(registry)
    tampered = bytearray((registry.root / key / versions[1] / MODEL_FILE).read_bytes())
    tampered[-1] ^= 0xFF
    make_client(s3_settings).put_object(
        Bucket=BUCKET,
        Key=bucket.object_key(key, versions[1], MODEL_FILE),
        Body=bytes(tampered),
    )

    consumer = ArtifactRegistry(tmp_path / "consumer", public_keys=[PUBLIC_KEY])
    with pytest.raises(IntegrityError, match="SHA-256 mismatch"):
        _fetch_into(consumer, bucket.presign(key, expires=120))
    assert consumer.keys() == []


def test_push_refuses_a_locally_corrupted_version(s3_settings: Settings) -> None:
    registry, key, versions = _published(s3_settings)
    (registry.root / key / versions[0] / MODEL_FILE).write_bytes(b"not the model")
    bucket = ArtifactBucket(make_client(s3_settings), BUCKET, s3_settings.s3_prefix)
    with pytest.raises(IntegrityError, match="refusing to push"):
        bucket.push(registry)
    assert bucket.remote_versions(key) == []


def test_urls_file_holds_working_presigned_urls(s3_settings: Settings, tmp_path: Path) -> None:
    _, key, versions = _published(s3_settings)
    target = tmp_path / "urls.json"
    cli, command = _push_command()
    result = CliRunner().invoke(cli, [*command, "--key", key, "--urls-file", str(target)])
    assert result.exit_code == 0, result.output
    document = json.loads(target.read_text())
    assert document[key]["version"] == versions[1]
    assert target.stat().st_mode & 0o077 == 0
    consumer = ArtifactRegistry(tmp_path / "consumer", public_keys=[PUBLIC_KEY])
    assert _fetch_into(consumer, document[key]["urls"]) == versions[1]


def _push_command() -> tuple[typer.Typer, list[str]]:
    """The real CLI's command modules on a fresh app, and how `push` is spelled there."""
    cli = typer.Typer()
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(cli)
    return cli, ["artifacts", "push"]


def _public_read(s3_settings: Settings) -> str:
    """Let anonymous GETs read the bucket (an R2 public bucket / custom domain does the same)."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{BUCKET}/*",
            }
        ],
    }
    make_client(s3_settings).put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))
    return f"{s3_settings.s3_endpoint_url}/{BUCKET}/{s3_settings.s3_prefix}"


async def test_base_url_fetch_installs_the_pushed_champions(
    s3_settings: Settings, tmp_path: Path
) -> None:
    registry, key, versions = _published(s3_settings)
    ArtifactBucket(make_client(s3_settings), BUCKET, s3_settings.s3_prefix).push(registry)
    base_url = _public_read(s3_settings)

    consumer = ArtifactRegistry(tmp_path / "consumer", public_keys=[PUBLIC_KEY])
    results = await fetch_many(consumer, base_url, None, options=RemoteOptions(retries=0))
    result = results[key]
    assert isinstance(result, FetchResult), result
    assert (result.version, result.installed) == (versions[1], True)
    assert consumer.champion(key) == versions[1]
    assert consumer.load(key).version == versions[1]


async def test_base_url_fetch_refuses_a_corrupted_object(
    s3_settings: Settings, tmp_path: Path
) -> None:
    key, _ = _corrupt_remote_champion(s3_settings)

    consumer = ArtifactRegistry(tmp_path / "consumer", public_keys=[PUBLIC_KEY])
    results = await fetch_many(
        consumer, _public_read(s3_settings), [key], options=RemoteOptions(retries=0)
    )
    assert isinstance(results[key], IntegrityError), results[key]
    assert consumer.champion(key) is None
    assert consumer.keys() == [] or consumer.versions(key) == []


def test_push_if_configured_pushes_only_with_a_bucket(s3_settings: Settings) -> None:
    registry, key, versions = _published(s3_settings)
    unset = s3_settings.model_copy(update={"s3_bucket": None})
    assert push_if_configured(unset, registry, [key]) is None
    report = push_if_configured(s3_settings, registry, [key])
    assert report is not None
    assert report.champions == {key: versions[1]}
    bucket = ArtifactBucket(make_client(s3_settings), BUCKET, s3_settings.s3_prefix)
    assert bucket.remote_versions(key) == versions


def _pushes(result: str) -> float:
    return REGISTRY.get_sample_value("itff_artifact_pushes_total", {"result": result}) or 0.0


@pytest.mark.kafka
def test_rollback_moves_the_bucket_champion(s3_settings: Settings, on_broker: Settings) -> None:
    registry, key, versions = _published(s3_settings)
    bucket = ArtifactBucket(make_client(s3_settings), BUCKET, s3_settings.s3_prefix)
    bucket.push(registry)
    before = _pushes("ok")

    cli, _ = _push_command()
    result = CliRunner().invoke(cli, ["rollback", key, "--to", versions[0]])

    assert result.exit_code == 0, result.output
    assert registry.champion(key) == versions[0]
    assert bucket.remote_champion(key) == versions[0]
    assert bucket.remote_index() == {key: versions[0]}
    assert _pushes("ok") == before + 1


@pytest.mark.kafka
def test_a_failed_push_never_undoes_the_rollback(
    s3_settings: Settings, on_broker: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, key, versions = _published(s3_settings)
    monkeypatch.setenv("ITFF_S3_BUCKET", "no-such-bucket")  # every request answers NoSuchBucket
    before = _pushes("failed")

    cli, _ = _push_command()
    result = CliRunner().invoke(cli, ["rollback", key, "--to", versions[0]])

    assert result.exit_code == 0, result.output
    assert f"champion is now {versions[0]}" in result.output
    assert registry.champion(key) == versions[0]
    assert _pushes("failed") == before + 1


@pytest.mark.kafka
async def test_a_promotion_by_the_pipeline_reaches_the_bucket(
    s3_settings: Settings, kafka_settings: Settings, session_factory, tmp_path: Path
) -> None:
    folder = write_sample_slice(tmp_path / "bars", {"SPX": "SPX"}, bars=1400)
    settings = kafka_settings.model_copy(
        update={
            name: getattr(s3_settings, name)
            for name in ("s3_endpoint_url", "s3_bucket", "s3_prefix", "s3_region",
                         "s3_access_key_id", "s3_secret_access_key", "artifact_signing_key")
        }
        | {"symbols": ["SPX"], "targets": ["direction"], "model_types": ["logreg"],
           "data_source": f"csv:{folder}", "pipeline_workers": 1}
    )  # fmt: skip
    registry = registry_from_settings(settings)
    before = _pushes("ok")

    async with ModelEventPublisher(settings) as events:
        summary = await run_pipeline(
            settings, session_factory=session_factory, registry=registry, events=events,
            trigger="test",
        )  # fmt: skip

    assert summary.succeeded, summary.error
    key = "SPX-direction-logreg"
    assert summary.decisions[key]["decision"] == "promoted"
    bucket = ArtifactBucket(make_client(settings), BUCKET, settings.s3_prefix)
    assert bucket.remote_champion(key) == registry.champion(key) is not None
    assert _pushes("ok") == before + 1


def _consumer_settings(s3_settings: Settings, tmp_path: Path, **changes: object) -> Settings:
    """A consumer on another machine: its own empty registry, same bucket and signing key."""
    return s3_settings.model_copy(update={"artifact_dir": tmp_path / "consumer", **changes})


async def test_consumer_start_installs_champions_through_presigned_urls(
    s3_settings: Settings, tmp_path: Path
) -> None:
    registry, key, versions = _published(s3_settings)
    ArtifactBucket(make_client(s3_settings), BUCKET, s3_settings.s3_prefix).push(registry)
    consumer = _consumer_settings(s3_settings, tmp_path)

    [result] = await pull_champions(consumer, options=RemoteOptions(retries=0))

    assert (result.key, result.version, result.installed) == (key, versions[1], True)
    local = registry_from_settings(consumer)
    assert local.champion(key) == versions[1]
    assert local.load(key).version == versions[1]


async def test_consumer_start_from_the_base_url(s3_settings: Settings, tmp_path: Path) -> None:
    registry, key, versions = _published(s3_settings)
    ArtifactBucket(make_client(s3_settings), BUCKET, s3_settings.s3_prefix).push(registry)
    consumer = _consumer_settings(
        s3_settings, tmp_path, artifact_base_url=_public_read(s3_settings), s3_bucket=None
    )

    [result] = await pull_champions(consumer, options=RemoteOptions(retries=0))

    assert (result.key, result.version) == (key, versions[1])
    assert registry_from_settings(consumer).champion(key) == versions[1]


async def test_without_a_remote_the_consumer_serves_its_local_registry(
    s3_settings: Settings, tmp_path: Path
) -> None:
    consumer = _consumer_settings(s3_settings, tmp_path, s3_bucket=None, artifact_base_url=None)
    assert await pull_champions(consumer) == []
    assert not (tmp_path / "consumer").exists()


def _corrupt_remote_champion(s3_settings: Settings) -> tuple[str, str]:
    registry, key, versions = _published(s3_settings)
    bucket = ArtifactBucket(make_client(s3_settings), BUCKET, s3_settings.s3_prefix)
    bucket.push(registry)
    model = bytearray((registry.root / key / versions[1] / MODEL_FILE).read_bytes())
    model[len(model) // 2] ^= 0x01
    make_client(s3_settings).put_object(
        Bucket=BUCKET, Key=bucket.object_key(key, versions[1], MODEL_FILE), Body=bytes(model)
    )
    return key, versions[1]


async def test_consumer_start_refuses_a_champion_that_fails_verification(
    s3_settings: Settings, tmp_path: Path
) -> None:
    key, _version = _corrupt_remote_champion(s3_settings)
    consumer = _consumer_settings(s3_settings, tmp_path)

    with pytest.raises(
        IntegrityError, match=f"refusing to start: .*{key}: download of .*corrupted"
    ):
        await pull_champions(consumer, options=RemoteOptions(retries=0))
    assert registry_from_settings(consumer).champion(key) is None


def test_itff_consumer_exits_with_one_line_on_a_mismatch(
    s3_settings: Settings, tmp_path: Path
) -> None:
    """The real entry point: it refuses before it connects to Kafka or opens the database."""
    key, _version = _corrupt_remote_champion(s3_settings)
    env = child_env(
        ITFF_ENV="test",
        ITFF_ARTIFACT_DIR=str(tmp_path / "consumer"),
        ITFF_ARTIFACT_BASE_URL=_public_read(s3_settings),
        ITFF_ARTIFACT_SIGNING_KEY=SIGNING_KEY,
        ITFF_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'never.db'}",
        ITFF_KAFKA_BOOTSTRAP="127.0.0.1:1",  # never reached
        ITFF_LOG_JSON="false",
    )
    itff = Path(sys.executable).with_name("itff")
    done = subprocess.run(
        [str(itff), "consumer", "--metrics-port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    error_lines = [line for line in done.stderr.splitlines() if line.startswith("itff:")]
    assert len(error_lines) == 1, done.stderr
    assert error_lines[0].startswith("itff: refusing to start: champions from ITFF_ARTIFACT")
    assert key in error_lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "never.db").exists()


@pytest.mark.kafka
async def test_itff_rollback_moves_the_bucket_champion(
    s3_settings: Settings, kafka_settings: Settings, session_factory
) -> None:
    """The real `itff rollback` (database, model event, registry), then the push."""
    registry, key, versions = _published(s3_settings)
    async with session_factory() as session:
        for version in versions:
            await model_repo.add_version(
                session=session, key=key, version=version, symbol="SPX", target="direction",
                model_type="logreg", sha256=registry.info(key, version).sha256 or "",
                metrics={}, train_start=None, train_end=None, run_id=None,
            )  # fmt: skip
        await model_repo.set_champion(session=session, key=key, version=versions[1])
        await session.commit()
    bucket = ArtifactBucket(make_client(s3_settings), BUCKET, s3_settings.s3_prefix)
    bucket.push(registry)
    env = {
        **os.environ,
        "ITFF_ENV": "test",
        "ITFF_DATABASE_URL": kafka_settings.database_url,
        "ITFF_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "ITFF_KAFKA_BOOTSTRAP": kafka_settings.bootstrap,
        "ITFF_LOG_JSON": "false",
    }  # the ITFF_S3_* and artifact variables come from the s3_settings fixture
    itff = Path(sys.executable).with_name("itff")
    process = await asyncio.create_subprocess_exec(
        str(itff), "rollback", key, "--to", versions[0], env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)

    assert process.returncode == 0, stderr.decode()
    assert f"champion is now {versions[0]}" in stdout.decode()
    assert registry.champion(key) == versions[0]
    assert bucket.remote_champion(key) == versions[0]


async def test_a_consumer_follows_a_promotion_through_the_bucket(
    s3_settings: Settings, tmp_path: Path
) -> None:
    """`pull_key` (for a model event on a consumer without the scheduler's disk)."""
    registry, key, versions = _published(s3_settings)
    bucket = ArtifactBucket(make_client(s3_settings), BUCKET, s3_settings.s3_prefix)
    bucket.push(registry)
    consumer = _consumer_settings(s3_settings, tmp_path)
    await pull_champions(consumer, options=RemoteOptions(retries=0))

    newer = "20260103T000000Z-0001"
    registry.publish(make_bundle(version=newer))
    registry.promote(key, newer)
    bucket.push(registry, [key])
    result = await pull_key(consumer, key, options=RemoteOptions(retries=0))

    assert result is not None
    assert (result.version, result.installed, result.promoted) == (newer, True, True)
    local = registry_from_settings(consumer)
    assert local.champion(key) == newer
    assert [info.version for info in local.versions(key)] == [versions[1], newer]
    unset = consumer.model_copy(update={"s3_bucket": None})
    assert await pull_key(unset, key) is None
