"""deploy/render.yaml: services, commands, ports, disks and variables agree with the code."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.contracts import Settings
from bot.runtime.forwarding import client_address, networks
from tests.deploy.test_docker import assert_cli_command, default, itff_invocations

ROOT = Path(__file__).resolve().parents[2]
BLUEPRINT = yaml.safe_load((ROOT / "deploy" / "render.yaml").read_text())
SERVICES = {service["name"]: service for service in BLUEPRINT["services"]}
GROUPS = {group["name"]: group for group in BLUEPRINT["envVarGroups"]}
DEPLOY_ONLY = {"ITFF_HEALTHCHECK_URL"}
ROLES = {
    "itff-webhook": ("web", "webhook"),
    "itff-consumer": ("worker", "consumer"),
    "itff-scheduler": ("worker", "scheduler"),
    "itff-dashboard": ("web", "dashboard"),
}


def env(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for item in service.get("envVars", []):
        if "fromGroup" in item:
            merged |= {var["key"]: var for var in GROUPS[item["fromGroup"]]["envVars"]}
        else:
            merged[item["key"]] = item
    return merged


def itff_commands(service: dict[str, Any]) -> list[list[str]]:
    """The `itff ...` invocations of a Docker Command (plain, or `sh -c '...'`)."""
    words = shlex.split(service["dockerCommand"])
    script = words[2] if words[:2] == ["sh", "-c"] else service["dockerCommand"]
    return itff_invocations(script)


@pytest.mark.parametrize("name", sorted(ROLES))
def test_each_service_runs_a_real_command_from_the_dockerfile(name: str) -> None:
    service = SERVICES[name]
    kind, role = ROLES[name]
    assert service["type"] == kind
    assert service["runtime"] == "docker"
    assert service["dockerfilePath"] == "./Dockerfile"
    commands = itff_commands(service)
    assert commands[-1] == [role]
    for command in commands:
        assert_cli_command(command)


def test_web_services_listen_where_render_routes_and_checks_them() -> None:
    webhook, dashboard = env(SERVICES["itff-webhook"]), env(SERVICES["itff-dashboard"])
    assert int(webhook["PORT"]["value"]) == int(webhook["ITFF_WEBHOOK_PORT"]["value"])
    assert int(webhook["PORT"]["value"]) == default("webhook_port")
    assert int(dashboard["PORT"]["value"]) == int(dashboard["ITFF_DASH_PORT"]["value"])
    assert dashboard["ITFF_DASH_HOST"]["value"] == "0.0.0.0"
    for name in ("itff-webhook", "itff-dashboard"):
        assert SERVICES[name]["healthCheckPath"] == "/health"


def test_every_itff_variable_is_a_setting_and_secrets_are_never_literal() -> None:
    for service in SERVICES.values():
        for key, item in env(service).items():
            if not key.startswith("ITFF_") or key in DEPLOY_ONLY:
                continue
            field = key.removeprefix("ITFF_").lower()
            assert field in Settings.model_fields, f"{service['name']}: {key} is no setting"
            if "SecretStr" in str(Settings.model_fields[field].annotation):
                assert "value" not in item, f"{key} must be generated or set in the dashboard"


def test_references_resolve() -> None:
    databases = {db["name"] for db in BLUEPRINT["databases"]}
    for service in SERVICES.values():
        for item in env(service).values():
            if "fromService" in item:
                assert item["fromService"]["name"] in SERVICES
            if "fromDatabase" in item:
                assert item["fromDatabase"]["name"] in databases


SECRETS_OF = {
    "itff-webhook": {"ITFF_TRADINGVIEW_PASSPHRASE", "ITFF_API_TOKEN", "ITFF_WEBHOOK_SECRET"},
    "itff-consumer": set(),
    "itff-scheduler": {"ITFF_ARTIFACT_SIGNING_KEY", "ITFF_S3_SECRET_ACCESS_KEY"},
    "itff-dashboard": {"ITFF_DASH_PASSWORD"},
}
GENERATED = {"ITFF_TRADINGVIEW_PASSPHRASE", "ITFF_API_TOKEN", "ITFF_DASH_PASSWORD"}


def test_shared_state_kafka_and_secrets() -> None:
    for name in ROLES:
        variables = env(SERVICES[name])
        assert "fromDatabase" in variables["ITFF_DATABASE_URL"], f"{name}: the shared database"
        assert variables["ITFF_ENV"]["value"] == "production"
        secrets = {
            key
            for key in variables
            if key[5:].lower() in Settings.model_fields
            and "SecretStr" in str(Settings.model_fields[key[5:].lower()].annotation)
        }
        assert secrets == SECRETS_OF[name], f"{name} gets only the secrets it uses"
        for secret in secrets & GENERATED:
            assert variables[secret].get("generateValue") is True
        loads_models = name in {"itff-webhook", "itff-consumer", "itff-scheduler"}
        assert ("ITFF_ARTIFACT_PUBLIC_KEYS" in variables) == loads_models, name
    kafka = SERVICES["itff-kafka"]
    assert kafka["type"] == "pserv"
    assert kafka["image"]["url"].endswith(f"apache/kafka:{default('kafka_version')}")
    assert kafka["disk"]["mountPath"] == env(kafka)["KAFKA_LOG_DIRS"]["value"]
    for name in ("itff-webhook", "itff-consumer", "itff-scheduler"):
        assert env(SERVICES[name])["ITFF_KAFKA_BOOTSTRAP"]["fromService"]["name"] == "itff-kafka"
    assert "disk" in SERVICES["itff-scheduler"], "the scheduler keeps its artifacts on a disk"


def test_the_consumer_refuses_to_start_on_a_bad_remote_champion() -> None:
    """No shared disk on Render: the consumer fetches from ITFF_ARTIFACT_BASE_URL in its own
    start-up (`bot.serving.install`), so the Docker Command is the plain role."""
    consumer = SERVICES["itff-consumer"]
    assert itff_commands(consumer) == [["consumer"]]
    assert "ITFF_ARTIFACT_BASE_URL" in env(consumer)
    assert "disk" not in consumer


@pytest.mark.parametrize("name", ["itff-webhook", "itff-dashboard"])
def test_public_services_find_the_client_behind_cloudflare_and_renders_proxy(name: str) -> None:
    """A request's path on Render: client -> Cloudflare -> Render's proxy (10.x) -> the service."""
    variable = env(SERVICES[name])["ITFF_TRUSTED_PROXIES"]
    trusted = networks(Settings(trusted_proxies=variable["value"]).trusted_proxies)
    chain = "198.51.100.23, 104.23.11.5"  # the client, then the Cloudflare edge that proxied it
    assert client_address("10.21.157.68", chain, trusted) == "198.51.100.23"
    forged = "52.89.214.238, 198.51.100.23, 2606:4700::6810:85e5"  # a left hop the client sent
    assert client_address("10.21.157.68", forged, trusted) == "198.51.100.23"
    assert client_address("203.0.113.8", chain, trusted) == "203.0.113.8"  # not via the proxy
