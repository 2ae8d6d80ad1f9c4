"""`itff contract generate [--check]`: the published contract of the topics, from the code.

Writes docs/asyncapi.yaml (the consumer app's AsyncAPI document, `consumers.contract`) and, for each
topic, docs/schemas/<topic>/v<N>.json: the JSON Schema of the `schema_version` the code emits.
Schemas of older versions are kept as released; a change to a released version that would break
its readers is refused (docs/release.md, "Wire contracts").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bot.contracts import BadInput, Settings
from bot.contracts.compatibility import (
    MESSAGES,
    breaking_changes,
    message_schema,
    released_versions,
    schema_version,
)

GENERATE = "itff contract generate"
Docs = Annotated[Path, typer.Option(help="the docs folder of the repository")]
Check = Annotated[
    bool, typer.Option("--check", help="write nothing; fail when a file differs from the code")
]


def contract_files(docs: Path) -> dict[Path, str]:
    """What the code generates, by path under `docs`: the AsyncAPI document and the schemas."""
    from consumers.contract import asyncapi_yaml

    # the defaults, whatever the environment: the document names the released topic names
    files = {docs / "asyncapi.yaml": asyncapi_yaml(Settings.model_construct())}
    for topic, model in MESSAGES.items():
        path = docs / "schemas" / topic / f"v{schema_version(model)}.json"
        files[path] = json.dumps(message_schema(model), indent=2) + "\n"
    return files


def incompatibilities(docs: Path, files: dict[Path, str]) -> list[str]:
    """Each generated schema against the released version before it and its own released file."""
    problems = []
    for topic, model in MESSAGES.items():
        version = schema_version(model)
        released = released_versions(docs / "schemas" / topic)
        new = json.loads(files[docs / "schemas" / topic / f"v{version}.json"])
        older = [v for v in released if v < version]
        against = list(older[-1:] + ([version] if version in released else []))
        for base in against:
            old = json.loads(released[base].read_text())
            problems += [
                f"{topic} v{version} against released v{base}: {problem}"
                for problem in breaking_changes(old, new)
            ]
    return problems


def stale(files: dict[Path, str]) -> list[Path]:
    return [path for path, text in files.items() if not path.exists() or path.read_text() != text]


def register(app: typer.Typer) -> None:
    contract = typer.Typer(
        help="The published contract of the topics: AsyncAPI and JSON Schemas.",
        no_args_is_help=True,
    )

    @contract.command("generate")
    def generate(docs: Docs = Path("docs"), check: Check = False) -> None:
        """Write docs/asyncapi.yaml and docs/schemas/<topic>/v<N>.json from the code."""
        if not docs.is_dir():
            raise BadInput(f"{docs} is not a folder: run from the repository root or pass --docs")
        files = contract_files(docs)
        problems = incompatibilities(docs, files)
        if problems:
            raise BadInput(
                "the code's schemas would break readers of a released schema_version: "
                + "; ".join(problems)
                + ". Bump the model's schema_version instead (docs/release.md, Wire contracts)"
            )
        changed = stale(files)
        if check:
            if changed:
                names = ", ".join(str(path) for path in changed)
                typer.echo(f"out of date: {names}; run `{GENERATE}` and commit them", err=True)
                raise typer.Exit(1)
            typer.echo(f"the contract in {docs} matches the code")
            return
        for path in changed:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(files[path])
            typer.echo(f"wrote {path}")
        typer.echo(f"{len(changed)} of {len(files)} contract files changed")

    app.add_typer(contract, name="contract")
