"""docker-compose.yml, checked statically: the Compose Specification schema (vendored from
compose-go, the library Docker Compose uses), commands that exist in the CLI, and ports, variables,
volumes and start order that agree with bot/contracts/settings.py and the Dockerfile."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator, validators

from bot.contracts import Settings
from bot.contracts.settings import SECRETS
from consumers import runner
from tests.deploy.test_docker import assert_cli_command, default, itff_invocations

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = ROOT / "deploy" / "schemas" / "compose-spec.json"
ITFF_SERVICES = ("topics", "migrate", "webhook", "consumer", "scheduler", "dashboard", "notifier")
LONG_RUNNING = ("webhook", "consumer", "scheduler", "dashboard")
DEPLOY_ONLY = {"ITFF_HEALTHCHECK_URL", "ITFF_IMAGE", "ITFF_WEBHOOK_PUBLISH", "ITFF_DASH_PUBLISH"}
DEPLOY_ONLY |= {"ITFF_ALERT_WEBHOOK_URL"}
S3_SETTINGS = tuple(
    f"ITFF_{name.upper()}"
    for name in Settings.model_fields
    if name.startswith("s3_") and name != "s3_presign_seconds"
)
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def test_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    validator_class = validators.validator_for(schema, default=Draft7Validator)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_rejects_a_broken_file(compose: dict[str, Any]) -> None:
    """The schema check has teeth: a misspelt key and a wrong type are refused."""
    schema = json.loads(SCHEMA.read_text())
    validator = validators.validator_for(schema)(schema)
    broken = json.loads(json.dumps(compose))
    broken["services"]["webhook"]["depends_onn"] = ["kafka"]
    broken["services"]["consumer"]["expose"] = {"metrics": 9101}
    assert len(list(validator.iter_errors(broken))) >= 2


@pytest.mark.parametrize("name", ITFF_SERVICES)
def test_each_service_command_exists_in_the_cli(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    assert service["build"]["dockerfile"] == "Dockerfile"
    for command in commands_of(service):
        assert_cli_command(command)


def commands_of(service: dict[str, Any]) -> list[list[str]]:
    """`command` after the image's `itff` entry point, or the itff calls of a `sh -c` script."""
    if service.get("entrypoint") == ["/bin/sh", "-c"]:
        return itff_invocations(service["command"][0].replace("$$", "$"))
    assert "entrypoint" not in service
    return [service["command"]]


def test_consumer_installs_verified_champions_before_it_starts(
    services: dict[str, dict[str, Any]],
) -> None:
    """`itff consumer` itself fetches and verifies (tests/artifacts/test_s3.py runs
    it against a corrupted bucket); compose passes the variable through and adds no wrapper."""
    consumer = services["consumer"]
    assert commands_of(consumer) == [["consumer"]]
    assert "ITFF_ARTIFACT_BASE_URL" in consumer["environment"]
    assert "pull_champions(settings)" in inspect.getsource(runner.run)


def test_only_the_scheduler_holds_the_bucket_credentials(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ITFF_SERVICES:
        s3 = {var for var in services[name]["environment"] if var.startswith("ITFF_S3_")}
        s3.discard("ITFF_S3_PRESIGN_SECONDS")  # a lifetime, no credential
        assert s3 == (set(S3_SETTINGS) if name == "scheduler" else set()), name


def test_consumer_scales(services: dict[str, dict[str, Any]]) -> None:
    consumer = services["consumer"]
    assert "container_name" not in consumer, "--scale needs generated container names"
    assert "ports" not in consumer, "a fixed host port allows one replica only"
    assert [str(p) for p in consumer["expose"]] == [str(default("consumer_metrics_port"))]
    assert all("container_name" not in s for s in services.values())


def container_port(mapping: str) -> int:
    return int(mapping.rsplit(":", 1)[-1])


def test_ports_agree_with_the_settings(services: dict[str, dict[str, Any]]) -> None:
    assert [container_port(p) for p in services["webhook"]["ports"]] == [default("webhook_port")]
    assert [container_port(p) for p in services["dashboard"]["ports"]] == [default("dash_port")]
    assert services["dashboard"]["ports"][0].startswith("127.0.0.1:"), "dashboard: loopback only"
    assert [int(p) for p in services["scheduler"]["expose"]] == [default("scheduler_metrics_port")]
    env = services["webhook"]["environment"]
    assert int(env["ITFF_WEBHOOK_PORT"]) == default("webhook_port")
    assert int(services["dashboard"]["environment"]["ITFF_DASH_PORT"]) == default("dash_port")
    assert services["dashboard"]["environment"]["ITFF_DASH_HOST"] == "0.0.0.0"


def test_healthchecks_probe_each_service_on_its_own_port(
    services: dict[str, dict[str, Any]],
) -> None:
    ports = {
        "webhook": default("webhook_port"),
        "consumer": default("consumer_metrics_port"),
        "scheduler": default("scheduler_metrics_port"),
        "dashboard": default("dash_port"),
    }
    for name, port in ports.items():
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/" in probe, name
        assert f":{port}/" in services[name]["environment"]["ITFF_HEALTHCHECK_URL"]
    assert "kafka-broker-api-versions.sh" in " ".join(services["kafka"]["healthcheck"]["test"])


def test_every_itff_variable_is_a_setting(services: dict[str, dict[str, Any]]) -> None:
    text = COMPOSE.read_text()
    names = set(VARIABLE.findall(text))
    for service in services.values():
        names |= set(service.get("environment", {}))
    unknown = {
        name
        for name in names
        if name.startswith("ITFF_")
        and name not in DEPLOY_ONLY
        and name.removeprefix("ITFF_").lower() not in Settings.model_fields
    }
    assert not unknown, f"compose sets variables that no setting reads: {unknown}"


def test_required_secrets_are_demanded_not_defaulted() -> None:
    text = COMPOSE.read_text()
    for secret in (
        "ITFF_TRADINGVIEW_PASSPHRASE",
        "ITFF_API_TOKEN",
        "ITFF_DASH_PASSWORD",
        "ITFF_ARTIFACT_SIGNING_KEY",
    ):
        assert re.search(r"\$\{" + secret + r":\?", text), f"{secret} must use ${{{secret}:?...}}"


def test_kafka_is_a_single_kraft_node_for_in_network_clients(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka = services["kafka"]
    image, tag = kafka["image"].split(":")
    assert image == "apache/kafka"
    assert tag == default("kafka_version")
    assert tag.split(".")[0] == "4"
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name, value in env.items():
        if "REPLICATION_FACTOR" in name or name.endswith("_MIN_ISR"):
            assert int(value) == 1, name
    bootstrap = services["webhook"]["environment"]["ITFF_KAFKA_BOOTSTRAP"]
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert any(listener.endswith(f"//{bootstrap}") for listener in advertised), (
        f"in-network clients use {bootstrap}, which no listener advertises: {advertised}"
    )
    assert env["KAFKA_LOG_DIRS"] in [v.split(":")[1] for v in kafka["volumes"]]


def interpolated(value: str) -> str:
    """`${NAME:-default}` and `${NAME:?message}` as compose resolves them with an empty .env."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def condition(service: dict[str, Any], dependency: str) -> str:
    return str(service["depends_on"][dependency]["condition"])


def test_start_order(services: dict[str, dict[str, Any]]) -> None:
    assert condition(services["topics"], "kafka") == "service_healthy"
    for name in ("webhook", "consumer", "scheduler"):
        assert condition(services[name], "topics") == "service_completed_successfully"
        assert condition(services[name], "migrate") == "service_completed_successfully"
    assert condition(services["dashboard"], "migrate") == "service_completed_successfully"
    for name in ("topics", "migrate"):
        assert services[name]["restart"] == "no", f"{name} is a one-shot job"
    for name in LONG_RUNNING:
        assert "healthcheck" in services[name], name


def test_named_volumes_hold_database_artifacts_reports_logs(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose["volumes"])
    env = services["scheduler"]["environment"]
    database = env["ITFF_DATABASE_URL"]
    paths = {
        "itff-db": "/" + interpolated(database).split("////", 1)[1].rsplit("/", 1)[0],
        "itff-artifacts": env["ITFF_ARTIFACT_DIR"],
        "itff-reports": env["ITFF_REPORT_DIR"],
        "itff-logs": env["ITFF_LOG_DIR"],
    }
    assert interpolated(database).startswith("sqlite+aiosqlite:////")
    for volume, path in paths.items():
        assert volume in declared
        assert f"{volume}:/{path.lstrip('/')}" in services["scheduler"]["volumes"]
    assert "itff-db:" + paths["itff-db"] in services["consumer"]["volumes"]
    assert "itff-artifacts:" + paths["itff-artifacts"] in services["consumer"]["volumes"]


def test_monitoring_is_optional_and_its_files_exist(services: dict[str, dict[str, Any]]) -> None:
    for name in ("prometheus", "grafana", "alertmanager", "blackbox", "kafka-exporter"):
        assert services[name]["profiles"] == ["monitoring"], name
    for name in (*ITFF_SERVICES, "kafka"):
        if name == "notifier":  # opt-in: it refuses to start without a destination
            assert services[name]["profiles"] == ["notify"]
        else:
            assert "profiles" not in services[name], name
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{source} is mounted but missing"


@pytest.mark.parametrize("name", ["webhook", "dashboard"])
def test_no_forwarded_header_is_believed_without_a_proxy_in_front(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    """Clients reach these services through the published port, not through a proxy: by default
    no address is trusted; an operator's ITFF_TRUSTED_PROXIES in .env is passed through."""
    assert services[name]["environment"]["ITFF_TRUSTED_PROXIES"] == "${ITFF_TRUSTED_PROXIES:-}"


# settings of the local broker and database server (`itff kafka|postgres start`, `itff up`),
# not of containers
LOCAL_ONLY = {
    "home", "kafka_port", "kafka_controller_port", "kafka_version", "kafka_cache_dir",
    "kafka_data_dir", "kafka_heap", "postgres_data_dir", "postgres_port", "postgres_bin_dir",
}  # fmt: skip
# set by compose itself, per service where it is a listener
FIXED = {
    "kafka_bootstrap": ITFF_SERVICES, "artifact_dir": ITFF_SERVICES,
    "report_dir": ITFF_SERVICES, "log_dir": ITFF_SERVICES, "archive_dir": ITFF_SERVICES,
    "webhook_host": ("webhook",), "webhook_port": ("webhook",),
    "consumer_metrics_port": ("consumer",), "scheduler_metrics_port": ("scheduler",),
    "notifier_metrics_port": ("notifier",),
    "dash_host": ("dashboard",), "dash_port": ("dashboard",),
    "metrics_host": ("webhook", "consumer", "scheduler", "notifier"),
    "webhook_metrics_port": ("webhook",),
}  # fmt: skip
# the secrets each service uses, and no other
SECRETS_OF = {
    "topics": set(),
    "migrate": set(),
    "webhook": {
        "tradingview_passphrase",
        "api_token",
        "webhook_secret",
        "artifact_legacy_hmac_key",
    },
    "consumer": {"artifact_legacy_hmac_key"},
    "scheduler": {"artifact_signing_key", "artifact_legacy_hmac_key", "s3_secret_access_key"},
    "dashboard": {"dash_password"},
    "notifier": {"signal_webhook_secret", "telegram_bot_token", "discord_webhook_url"},
}
PUBLIC_KEYS_FOR = {"webhook", "consumer", "scheduler"}  # they verify models (rotation: scheduler)


def passes_through(value: object, name: str) -> bool:
    """`${ITFF_X...}` or a bare key (passed from the environment when set)."""
    return value is None or str(value).startswith("${ITFF_" + name.upper())


@pytest.mark.parametrize("name", ITFF_SERVICES)
def test_every_setting_reaches_the_containers(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    """What an operator sets in .env reaches each container that reads it: every setting that is
    not a secret, in every ITFF service, passed through from .env (or fixed by compose)."""
    environment = services[name]["environment"]
    for field in Settings.model_fields:
        variable = f"ITFF_{field.upper()}"
        if field in LOCAL_ONLY or field in SECRETS:
            continue
        if field in FIXED:
            assert (variable in environment) == (name in FIXED[field]), (name, variable)
        elif field.startswith("s3_") and field != "s3_presign_seconds":
            assert (variable in environment) == (name == "scheduler"), (name, variable)
        elif field == "artifact_public_keys":
            assert (variable in environment) == (name in PUBLIC_KEYS_FOR), (name, variable)
        else:
            assert variable in environment, f"{variable} set in .env never reaches {name}"
            assert passes_through(environment[variable], field), (name, variable)


@pytest.mark.parametrize("name", ITFF_SERVICES)
def test_services_get_only_the_secrets_they_use(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    environment = services[name]["environment"]
    given = {field for field in SECRETS if f"ITFF_{field.upper()}" in environment}
    assert given == SECRETS_OF[name]
    for field in given:
        assert passes_through(environment[f"ITFF_{field.upper()}"], field)


def test_postgres_is_an_optional_profile_that_the_migration_waits_for(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    postgres = services["postgres"]
    assert postgres["profiles"] == ["postgres"]
    assert postgres["image"].split(":")[0] == "postgres"  # the official image
    env = postgres["environment"]
    assert (env["POSTGRES_USER"], env["POSTGRES_DB"]) == ("itff", "itff")
    assert "postgres-data:/var/lib/postgresql/data" in postgres["volumes"]
    assert "postgres-data" in compose["volumes"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    wait = services["migrate"]["depends_on"]["postgres"]
    assert wait == {"condition": "service_healthy", "required": False}
    for name in ITFF_SERVICES:
        if name not in ("topics", "migrate"):
            assert condition(services[name], "migrate") == "service_completed_successfully"
