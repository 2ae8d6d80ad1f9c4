"""The documents cannot drift from the code: every `itff ...` and `make ...` command they give
exists (command, subcommand, each `--flag`); every repository path, module, metric name and log
event they cite exists; every log pattern of a runbook matches a line the code writes; every
Makefile rule runs files that exist. (`test_docs.py` checks the links, `test_openapi.py` the
receiver's statuses.)"""

from __future__ import annotations

import ast
import functools
import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.test_docker import cli_tree

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
    ROOT / "deploy" / "rollback_checklist.md",
]
RUNBOOKS = sorted((ROOT / "docs" / "runbooks").glob("*.md"))
SOURCES = ("bot", "producers", "consumers", "storage", "panel_app")
TOP_DIRS = "bot|consumers|producers|storage|panel_app|tests|deploy|bench|docs|data|\\.ci|\\.github"

FENCE = re.compile(r"^[ \t]*```(\w*)[^\n]*\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
SHELL_FENCES = {"bash", "sh", "shell", "console"}
PROMPT = re.compile(r"^\s*\$ (.+)$", re.MULTILINE)
INLINE = re.compile(r"`([^`]+)`")
SEPARATORS = {";", "&&", "||", "|", "then", "do", "else", "&"}
PLACEHOLDER = re.compile(r"^(\.\.\.|<[^>]+>|\{[^}]+\}|[A-Z][A-Z0-9_.:-]*)$")
REPO_PATH = re.compile(rf"^(?:\./)?(?:{TOP_DIRS})/[^\s]*$")
METRIC = re.compile(r"(?<![\w.-])itff_[a-z0-9_]+(?![\w-])")
METRIC_SUFFIXES = ("", "_total", "_count", "_sum", "_bucket", "_created", "_info")
LOG_LEVELS = {
    "debug": "debug",
    "info": "info",
    "warning": "warning",
    "warn": "warning",
    "error": "error",
    "exception": "error",
    "critical": "critical",
}
# Where a document names a log event: `"event": "..."`, "log line `...`", "`...` log lines",
# "the command's log says `...`", and in a runbook "look for `...`" after a log command.
LOG_CITATIONS = (
    re.compile(r'"event":\s*"([^"]+)"'),
    re.compile(r"\blog(?: lines?)?(?: says)?\s+`([^`]+)`"),
    re.compile(r"`([^`]+)`\s+log lines?"),
    re.compile(r"look for\s+`([^`]+)`"),
)


def ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _without_fences(text: str) -> str:
    return FENCE.sub("", text)


def shell_lines(text: str) -> list[str]:
    """The shell commands of a document: fenced bash/sh/console blocks, `$ ` lines, inline code."""
    found: list[str] = []
    for language, body in FENCE.findall(text):
        joined = body.replace("\\\n", " ")
        if language in {"bash", "sh", "shell"}:
            lines = [re.sub(r"\s+#.*$", "", line) for line in joined.splitlines()]
            found += [line.strip().removeprefix("$ ") for line in lines]
        else:
            found += PROMPT.findall(joined)
    rest = _without_fences(text)
    found += PROMPT.findall(rest)
    # in a Markdown table `a\|b` is `a|b`: alternatives (`itff kafka start|stop`)
    found += [" ".join(span.replace("\\|", "|").split()) for span in INLINE.findall(rest)]
    return [line for line in found if line]


def words(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:  # prose in backticks with an apostrophe: read it word by word
        return line.split()


def invocations(line: str, program: str) -> list[list[str]]:
    """The arguments of each `program ...` of a shell line (`docker compose exec x itff a` too)."""
    parts = words(line)
    found = []
    for index, word in enumerate(parts):
        if word != program:
            continue
        command: list[str] = []
        for following in parts[index + 1 :]:
            if following in SEPARATORS or following.startswith((">", "2>")):
                break
            command.append(following)
        found.append(command)
    return found


@dataclass(frozen=True)
class Invocation:
    document: str
    line: str
    args: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.document}: {self.line}"


def collect(program: str) -> list[Invocation]:
    found: dict[tuple[str, tuple[str, ...]], Invocation] = {}
    for document in DOCUMENTS:
        for line in shell_lines(document.read_text()):
            for args in map(tuple, invocations(line, program)):
                for variant in alternatives(args):
                    found.setdefault(
                        (ids(document), variant), Invocation(ids(document), line, variant)
                    )
    return list(found.values())


def alternatives(args: tuple[str, ...]) -> list[tuple[str, ...]]:
    """`kafka start|stop` -> `kafka start`, `kafka stop` (the first word with alternatives)."""
    for index, word in enumerate(args):
        if "|" in word:
            return [(*args[:index], choice, *args[index + 1 :]) for choice in word.split("|")]
    return [args]


def itff_problem(args: tuple[str, ...], tree: dict[tuple[str, ...], frozenset[str]]) -> str | None:
    """What is wrong with `itff ARGS` against the CLI tree, or None."""
    path: tuple[str, ...] = ()
    rest = list(args)
    while rest and (*path, rest[0]) in tree:
        path = (*path, rest.pop(0))
    is_group = any(len(p) == len(path) + 1 and p[: len(path)] == path for p in tree)
    if is_group and rest and not rest[0].startswith("-"):
        if PLACEHOLDER.match(rest[0]):
            return None
        return f"`itff {' '.join((*path, rest[0]))}` is not a command of the CLI"
    for word in rest:
        if word == "--":
            break
        name = word.split("=", 1)[0]
        if name.startswith("-") and name != "-" and name not in tree[path]:
            known = ", ".join(sorted(tree[path]))
            return f"`itff {' '.join(path)}` has no option {name} (it has {known})"
    return None


@pytest.mark.parametrize("invocation", collect("itff"), ids=str)
def test_documented_itff_commands_and_flags_exist(invocation: Invocation) -> None:
    problem = itff_problem(invocation.args, cli_tree())
    assert problem is None, f"{invocation}: {problem}"


# --- the Makefile -------------------------------------------------------------------------------

MAKEFILE = ROOT / "Makefile"
RULE = re.compile(r"^([^\s:#=][^:=]*?):(?!=)(.*)$")
RECIPE_FILE = re.compile(rf"(?<![\w/$)])((?:{TOP_DIRS})/[\w./-]+\.(?:py|sh))\b")


@functools.cache
def make_rules() -> dict[str, list[str]]:
    """Each Makefile rule -> its recipe lines (.PHONY excluded)."""
    rules: dict[str, list[str]] = {}
    current: list[str] = []
    for line in MAKEFILE.read_text().splitlines():
        if line.startswith("\t"):
            current.append(line.strip())
            continue
        match = RULE.match(line)
        if match:
            current = []
            for name in match.group(1).split():
                rules.setdefault(name, current)
    return rules


def phony() -> list[str]:
    return [
        name
        for line in MAKEFILE.read_text().splitlines()
        if line.startswith(".PHONY:")
        for name in line.removeprefix(".PHONY:").split()
    ]


@pytest.mark.parametrize("invocation", collect("make"), ids=str)
def test_documented_make_targets_exist(invocation: Invocation) -> None:
    targets = [a for a in invocation.args if not a.startswith("-") and "=" not in a]
    for target in targets:
        assert target in make_rules(), f"{invocation}: the Makefile has no rule `{target}`"


@pytest.mark.parametrize("name", phony())
def test_every_phony_name_is_a_rule(name: str) -> None:
    assert name in make_rules(), f"Makefile: .PHONY names `{name}`, which has no rule"


@pytest.mark.parametrize("rule", sorted(r for r in make_rules() if r != ".PHONY"))
def test_make_rules_run_files_that_exist(rule: str) -> None:
    for line in make_rules()[rule]:
        for path in RECIPE_FILE.findall(line):
            assert (ROOT / path).exists(), f"`make {rule}` runs {path}, which does not exist"


# --- paths, metrics, log events ---------------------------------------------------------------


def cited_paths(text: str) -> set[str]:
    paths = set()
    for span in INLINE.findall(_without_fences(text)):
        path = re.sub(r"(::\S+|:\d+(-\d+)?|#\S*)$", "", span.strip())
        if not REPO_PATH.match(path) or re.search(r"[*{}<>$]", path):
            continue
        if path.endswith("/") or "." in path.rsplit("/", 1)[-1]:
            paths.add(path.removeprefix("./"))
    return paths


@pytest.mark.parametrize("document", DOCUMENTS, ids=ids)
def test_cited_repository_paths_exist(document: Path) -> None:
    missing = sorted(p for p in cited_paths(document.read_text()) if not (ROOT / p).exists())
    assert not missing, f"{ids(document)} cites paths that do not exist: {missing}"


MODULE = re.compile(r"^((?:bot|consumers|producers|storage|panel_app)(?:\.\w+)+)")
TABLE_ROW = re.compile(
    r"^\| `((?:bot|consumers|producers|storage|panel_app)[\w/]*)/` \|(.*)\|$", re.MULTILINE
)


def module_problem(name: str) -> str | None:
    """`bot.core.scores` or `bot.pipeline.ChampionSwitch.promote`: the module is a file of the
    repository and the names after it are defined there (read, not imported)."""
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:split])
        source = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if source.exists():
            text = source.read_text()
            missing = [part for part in parts[split:] if not re.search(rf"\b{part}\b", text)]
            return f"{'.'.join(parts[:split])} has no {missing[0]}" if missing else None
    return f"no module {name}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=ids)
def test_cited_modules_exist(document: Path) -> None:
    spans = INLINE.findall(_without_fences(document.read_text()))
    cited = {match.group(1) for span in spans if (match := MODULE.match(span.strip()))}
    problems = sorted(filter(None, map(module_problem, cited)))
    assert not problems, f"{ids(document)} cites modules that do not exist: {problems}"


def test_architecture_table_names_modules_that_exist() -> None:
    """In the package table, `(`name`)` after a package is one of its modules or packages."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = TABLE_ROW.findall(text)
    assert len(rows) >= 10
    missing = [
        f"{package}/{name}"
        for package, cell in rows
        for group in re.findall(r"\(([^)]*)\)", cell)
        for name in re.findall(r"`([a-z_]+)`", group)
        if name != "__all__"
        and not (ROOT / package / f"{name}.py").exists()
        and not (ROOT / package / name).is_dir()
    ]
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def _source_files() -> list[Path]:
    return [path for top in SOURCES for path in sorted((ROOT / top).rglob("*.py"))]


@functools.cache
def declared_metrics() -> frozenset[str]:
    """Every `itff_...` string literal of the code (the metric names it declares)."""
    names: set[str] = set()
    for path in _source_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.update(re.findall(r"^itff_[a-z0-9_]+$", node.value))
    return frozenset(names)


def exposed(name: str) -> bool:
    return any(
        name.removesuffix(s) in declared_metrics() for s in METRIC_SUFFIXES if name.endswith(s)
    )


@pytest.mark.parametrize("document", DOCUMENTS, ids=ids)
def test_cited_metrics_exist(document: Path) -> None:
    unknown = sorted({m for m in METRIC.findall(document.read_text()) if not exposed(m)})
    assert not unknown, f"{ids(document)} cites metrics that no code declares: {unknown}"


@functools.cache
def log_events() -> frozenset[tuple[str, str]]:
    """(event, level) of every log call of the code with a literal message."""
    events: set[tuple[str, str]] = set()
    for path in _source_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LOG_LEVELS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                events.add((node.args[0].value, LOG_LEVELS[node.func.attr]))
    return frozenset(events)


@pytest.mark.parametrize("document", DOCUMENTS, ids=ids)
def test_cited_log_events_exist(document: Path) -> None:
    text = " ".join(document.read_text().split())
    cited = {event for pattern in LOG_CITATIONS for event in pattern.findall(text)}
    cited = {event for event in cited if event not in LOG_LEVELS and not PLACEHOLDER.match(event)}
    known = {event for event, _ in log_events()}
    # an event may be cited by its head: `transient failure` for "transient failure: the batch ..."
    known |= {event.split(":", 1)[0] for event in known}
    unknown = sorted(cited - known)
    assert not unknown, f"{ids(document)} cites log events the code never writes: {unknown}"


RENDER = """
import sys
from bot.runtime.observability import configure_logging, get_logger
configure_logging(level="DEBUG", json=True, service="scheduler")
log = get_logger("docs")
for line in sys.stdin:
    level, _, event = line.rstrip("\\n").partition(" ")
    getattr(log, level)(event, error="RuntimeError('boom')")
"""


@functools.cache
def sample_log_lines() -> tuple[str, ...]:
    """One line per event of the code, rendered through the real logging configuration."""
    events = "".join(f"{level} {event}\n" for event, level in sorted(log_events()))
    result = subprocess.run(
        [sys.executable, "-c", RENDER],
        input=events,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    )
    return tuple(result.stderr.splitlines())


def test_sample_log_lines_are_the_compact_json_the_code_writes() -> None:
    lines = sample_log_lines()
    assert len(lines) == len(log_events())
    warning = next(line for line in lines if '"event":"kafka unreachable"' in line)
    assert json.loads(warning)["level"] == "warning"
    assert '"level":"warning"' in warning


@dataclass(frozen=True)
class LogFilter:
    document: str
    program: str
    args: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.document}: {self.program} {shlex.join(self.args)}"


def log_filters() -> list[LogFilter]:
    """Each grep / rg / jq that a runbook pipes logs into."""
    found = []
    for runbook in RUNBOOKS:
        for line in shell_lines(runbook.read_text()):
            if "logs" not in line:
                continue
            for program in ("grep", "rg", "jq"):
                found += [
                    LogFilter(ids(runbook), program, tuple(a)) for a in invocations(line, program)
                ]
    return found


def _bre_to_python(pattern: str) -> str:
    """A POSIX basic regular expression as Python's: `\\(`, `\\|`, `\\{` are the operators."""
    swapped = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern) and pattern[index + 1] in "(){}|+?":
            swapped.append(pattern[index + 1])
            index += 2
            continue
        swapped.append("\\" + char if char in "(){}|+?" else char)
        index += 1
    return "".join(swapped)


def matches(log_filter: LogFilter, line: str) -> bool:
    if log_filter.program == "jq":
        program = next(a for a in log_filter.args if not a.startswith("-"))
        jq = shutil.which("jq")
        assert jq is not None, "jq is needed to check a runbook's jq filter"
        result = subprocess.run(
            [jq, "-c", program], input=line, capture_output=True, text=True, check=False
        )
        return result.returncode == 0 and result.stdout.strip() not in {"", "null", "false"}
    options = [a for a in log_filter.args if a.startswith("-")]
    pattern = next(a for a in log_filter.args if not a.startswith("-"))
    flags = re.IGNORECASE if any("i" in o for o in options if not o.startswith("--")) else 0
    if any(o in {"-F", "--fixed-strings"} for o in options):
        return (pattern.lower() in line.lower()) if flags else pattern in line
    extended = log_filter.program == "rg" or any(
        "E" in o for o in options if not o.startswith("--")
    )
    return re.search(pattern if extended else _bre_to_python(pattern), line, flags) is not None


@pytest.mark.parametrize("log_filter", log_filters(), ids=str)
def test_runbook_log_patterns_match_lines_the_code_writes(log_filter: LogFilter) -> None:
    lines = sample_log_lines()
    assert any(matches(log_filter, line) for line in lines), (
        f"{log_filter} matches none of the {len(lines)} log lines the code can write, "
        f"compact JSON like {lines[0]}"
    )
