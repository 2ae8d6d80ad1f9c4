"""The Dockerfile, checked statically (no Docker engine here): hadolint, structure, no secrets,
entry points that exist in the CLI, and the runtime lock that the builder stage installs."""

from __future__ import annotations

import fnmatch
import functools
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from bot.contracts import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
SECRET_WORDS = re.compile(
    r"(PASSWORD|PASSPHRASE|SECRET|TOKEN|SIGNING_KEY|ACCESS_KEY)", re.IGNORECASE
)
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", re.MULTILINE)


CLI_TREE = """
import json, typer
from bot.cli import _register_all, app
_register_all()
tree = []
def walk(command, prefix):
    names = [o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")]
    tree.append([prefix, names])
    for name, sub in getattr(command, "commands", {}).items():
        walk(sub, [*prefix, name])
walk(typer.main.get_command(app), [])
print(json.dumps(tree))
"""


@functools.cache
def cli_tree() -> dict[tuple[str, ...], frozenset[str]]:
    """Every command path of the real `itff` CLI (all command modules registered) -> its options."""
    result = subprocess.run(
        [sys.executable, "-c", CLI_TREE],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
        cwd=ROOT,
    )
    tree = json.loads(result.stdout.splitlines()[-1])
    return {tuple(path): frozenset([*options, "--help"]) for path, options in tree}


def cli_commands() -> frozenset[tuple[str, ...]]:
    """Every command path of the real `itff` CLI."""
    return frozenset(cli_tree())


def assert_cli_command(command: list[str]) -> None:
    assert tuple(command) in cli_commands(), (
        f"`itff {' '.join(command)}` is not a command of the CLI (bot.cli.COMMAND_MODULES)"
    )


SEPARATORS = {";", "&&", "||", "|", "then", "do", "else"}


def itff_invocations(script: str) -> list[list[str]]:
    """The `itff ...` commands of a shell script (`a && exec itff b; itff c || exit 1`)."""
    words = shlex.split(script, comments=True)
    found: list[list[str]] = []
    for index, word in enumerate(words):
        if word != "itff":
            continue
        command: list[str] = []
        for following in words[index + 1 :]:
            if following in SEPARATORS:
                break
            command.append(following.removesuffix(";"))
            if following.endswith(";"):
                break
        found.append([part for part in command if part])
    return found


def test_shell_scripts_are_read_like_a_shell() -> None:
    script = 'if [ -n "$X" ]; then itff artifacts fetch || exit 1; fi; exec itff consumer'
    assert itff_invocations(script) == [["artifacts", "fetch"], ["consumer"]]
    assert itff_invocations("itff kafka topics && itff db upgrade && exec itff webhook") == [
        ["kafka", "topics"],
        ["db", "upgrade"],
        ["webhook"],
    ]


def test_cli_tree_is_read_from_the_real_cli() -> None:
    assert ("artifacts", "push") in cli_commands()
    assert ("db", "upgrade") in cli_commands()
    assert ("no-such-command",) not in cli_commands()


def default(name: str) -> object:
    return Settings.model_fields[name].default


@pytest.fixture(scope="module")
def parser() -> DockerfileParser:
    return DockerfileParser(str(DOCKERFILE))


def stages(parser: DockerfileParser) -> list[list[dict[str, str]]]:
    found: list[list[dict[str, str]]] = []
    for item in parser.structure:
        if item["instruction"] == "FROM":
            found.append([])
        if found:
            found[-1].append({"instruction": item["instruction"], "value": item["value"]})
    return found


def runtime(parser: DockerfileParser) -> list[dict[str, str]]:
    return stages(parser)[-1]


def values(stage: list[dict[str, str]], instruction: str) -> list[str]:
    return [item["value"] for item in stage if item["instruction"] == instruction]


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_on_python_311_slim(parser: DockerfileParser) -> None:
    assert parser.baseimage.startswith("python:3.11-slim")
    names = [
        item["value"].split()[-1] for item in parser.structure if item["instruction"] == "FROM"
    ]
    assert names == ["builder", "runtime"]
    builder = stages(parser)[0]
    assert any(
        "pip wheel" in run and "requirements-runtime.lock" in run for run in values(builder, "RUN")
    )
    install = " ".join(values(runtime(parser), "RUN"))
    assert "from=builder" in install
    assert "--no-index" in install, "the runtime stage installs only the builder's wheels"


def test_runtime_stage_runs_as_an_unprivileged_numeric_user(parser: DockerfileParser) -> None:
    users = values(runtime(parser), "USER")
    assert users, "the runtime stage sets no USER: the processes would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), users[-1]
    assert int(uid) >= 1000, users[-1]
    assert not gid or (gid.isdigit() and int(gid) > 0)
    order = [item["instruction"] for item in runtime(parser)]
    assert order.index("USER") < order.index("ENTRYPOINT")


def test_healthcheck_entrypoint_and_default_command(parser: DockerfileParser) -> None:
    stage = runtime(parser)
    health = values(stage, "HEALTHCHECK")
    assert health, "no HEALTHCHECK in the runtime stage"
    assert "CMD" in health[-1]
    assert "ITFF_HEALTHCHECK_URL" in health[-1]
    assert json.loads(values(stage, "ENTRYPOINT")[-1]) == ["itff"]
    assert_cli_command(json.loads(values(stage, "CMD")[-1]))


def test_no_secret_in_the_image(parser: DockerfileParser) -> None:
    env = parser.envs
    leaked = [name for name in env if SECRET_WORDS.search(name)]
    assert not leaked, f"secrets must come from the platform at run time, not ENV: {leaked}"
    args = values(runtime(parser), "ARG") + values(stages(parser)[0], "ARG")
    assert not [a for a in args if SECRET_WORDS.search(a.split("=")[0])]
    copied = " ".join(values(stages(parser)[0], "COPY") + values(runtime(parser), "COPY"))
    assert ".env" not in copied.split()
    assert env["ITFF_ENV"] == "production", "the image refuses placeholder secrets by default"


def test_exposed_ports_and_paths_match_the_settings(parser: DockerfileParser) -> None:
    exposed = {int(port) for port in " ".join(values(runtime(parser), "EXPOSE")).split()}
    assert exposed == {
        default("webhook_port"),
        default("webhook_metrics_port"),
        default("consumer_metrics_port"),
        default("scheduler_metrics_port"),
        default("dash_port"),
    }
    env = parser.envs
    for name in ("ITFF_DATABASE_URL", "ITFF_ARTIFACT_DIR", "ITFF_REPORT_DIR", "ITFF_LOG_DIR"):
        assert name.removeprefix("ITFF_").lower() in Settings.model_fields
        assert "/var/lib/itff/" in env[name]
    source = env["ITFF_DATA_SOURCE"].removeprefix("csv:")
    assert f"{(ROOT / 'data' / 'sample').relative_to(ROOT)} {source}" in " ".join(
        values(runtime(parser), "COPY")
    )


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    result = False
    for pattern in dockerignore_patterns():
        negate = pattern.startswith("!")
        pat = pattern.removeprefix("!").rstrip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, pat) for prefix in prefixes):
            result = not negate
    return result


def test_every_copied_path_exists_and_reaches_the_build_context(parser: DockerfileParser) -> None:
    for stage in stages(parser):
        for copy in values(stage, "COPY"):
            if "--from=" in copy:
                continue
            sources = [part for part in copy.split() if not part.startswith("--")][:-1]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file in the context"
                assert not ignored(source), f"COPY {source}: excluded by .dockerignore"


def test_dockerignore_keeps_secrets_and_clutter_out() -> None:
    for path in (
        ".env",
        ".venv/bin/python",
        ".git/config",
        "var/itff.db",
        "artifacts/x",
        "tests/x.py",
    ):
        assert ignored(path), f"{path} would be sent to the Docker daemon"
    assert not ignored("bot/cli/__init__.py")


def pins(path: Path) -> dict[str, str]:
    return {name.lower(): version for name, version in PIN.findall(path.read_text())}


def test_runtime_lock_is_the_runtime_part_of_the_dev_lock() -> None:
    runtime_pins = pins(ROOT / "requirements-runtime.lock")
    full = pins(ROOT / "requirements.lock")
    different = {n: (v, full.get(n)) for n, v in runtime_pins.items() if full.get(n) != v}
    assert not different, (
        f"requirements-runtime.lock disagrees with requirements.lock: {different}; regenerate it: "
        "uv pip compile pyproject.toml --python-version 3.11 -c requirements.lock "
        "-o requirements-runtime.lock"
    )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name = re.compile(r"^[A-Za-z0-9_.-]+")

    def names(requirements: list[str]) -> set[str]:
        found = (name.match(r) for r in requirements)
        return {m.group(0).lower().replace("_", "-") for m in found if m}

    missing = names(project["dependencies"]) - set(runtime_pins)
    assert not missing, f"runtime dependencies missing from requirements-runtime.lock: {missing}"
    dev_only = names(project["optional-dependencies"]["dev"]) - names(project["dependencies"])
    leaked = {n for n in dev_only & set(runtime_pins) if n in {"pytest", "ruff", "mypy", "moto"}}
    assert not leaked, f"development tools would ship in the image: {leaked}"
