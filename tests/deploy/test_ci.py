"""The GitHub Actions workflows: actionlint (with shellcheck on the `run:` scripts), the schema of
workflow files, and the promises of docs/release.md (lint, tests with Kafka, image, ghcr.io)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from check_jsonschema.builtin_schemas import get_builtin_schema  # type: ignore[import-untyped]
from jsonschema import validators

from tests.deploy.test_docker import assert_cli_command, default
from tests.deploy.test_monitoring import run, tool

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def load(name: str) -> dict[str, Any]:
    # PyYAML reads the key `on` as True (YAML 1.1); put it back.
    document = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    if True in document:
        document["on"] = document.pop(True)
    return dict(document)


def test_actionlint_finds_nothing() -> None:
    assert {path.name for path in WORKFLOWS} == {"ci.yml", "release.yml"}
    result = run(tool("actionlint"), "-no-color", *map(str, WORKFLOWS))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_schema(path: Path) -> None:
    schema = get_builtin_schema("vendor.github-workflows")
    validator = validators.validator_for(schema)(schema)
    errors = list(validator.iter_errors(load(path.name)))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def steps(job: dict[str, Any]) -> str:
    return json.dumps(job["steps"])


def test_ci_lints_tests_with_kafka_and_builds_the_image() -> None:
    workflow = load("ci.yml")
    assert workflow["on"]["push"]["tags"] == ["v*.*.*"]
    jobs = workflow["jobs"]
    assert "make lint" in steps(jobs["lint"])
    assert "make test" in steps(jobs["test"])
    kafka = jobs["test"]["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{default('kafka_version')}"
    host, port = jobs["test"]["env"]["ITFF_KAFKA_BOOTSTRAP"].split(":")
    assert f"PLAINTEXT://{host}:{port}" in kafka["env"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "--health-cmd" in kafka["options"]
    image = jobs["image"]
    assert set(image["needs"]) == {"lint", "test"}
    assert image["permissions"]["packages"] == "write"
    text = steps(image)
    assert "docker/setup-buildx-action" in text
    assert "docker/build-push-action" in text
    assert "ghcr.io/${{ github.repository }}" in text
    build = next(s for s in image["steps"] if "build-push-action" in s.get("uses", ""))
    assert build["with"]["push"] == "${{ startsWith(github.ref, 'refs/tags/v') }}"


def test_ci_smoke_test_uses_real_commands() -> None:
    image = load("ci.yml")["jobs"]["image"]
    smoke = next(s for s in image["steps"] if s.get("name", "").startswith("Smoke"))
    line = next(line for line in smoke["run"].splitlines() if "for command in" in line)
    commands = shlex.split(line.split(" in ", 1)[1].removesuffix("; do"))
    assert {"webhook", "consumer", "scheduler", "dashboard"} <= set(commands)
    for command in commands:
        assert_cli_command(command.split())


def test_release_matches_the_tag_to_pyproject_and_changelog() -> None:
    workflow = load("release.yml")
    assert workflow["on"]["push"]["tags"] == ["v*.*.*"]
    text = steps(workflow["jobs"]["release"])
    assert "pyproject.toml" in text
    assert "CHANGELOG.md" in text
    assert "gh release create" in text
