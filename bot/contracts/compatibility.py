"""The published contract of each topic: its message's JSON Schema per `schema_version`, and the
rule that a new version must not break a reader of an old one (docs/release.md, "Wire contracts").

The schema of every released version stays in `docs/schemas/<topic>/v<N>.json`; the one of the
version the code emits is generated from its pydantic model (`itff contract generate`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bot.contracts.schemas import Alert, DeadLetter, ModelEvent, Signal

# topic (the field of `Topics`) -> the one model of its messages
MESSAGES: Mapping[str, type[BaseModel]] = {
    "alerts": Alert,
    "signals": Signal,
    "dlq": DeadLetter,
    "models": ModelEvent,
}
VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.json$")
# changes with each version by design: a reader tells the versions apart by it
VERSION_FIELD = "schema_version"
JsonSchema = dict[str, Any]


def schema_version(model: type[BaseModel]) -> int:
    """The `schema_version` the model emits (its field's default)."""
    default = model.model_fields[VERSION_FIELD].default
    if not isinstance(default, int):
        raise TypeError(f"{model.__name__}.{VERSION_FIELD} has no integer default")
    return default


def message_schema(model: type[BaseModel]) -> JsonSchema:
    """The JSON Schema a reader validates a message against (pydantic's validation mode)."""
    return model.model_json_schema(mode="validation")


def released_versions(topic_dir: Path) -> dict[int, Path]:
    """`v<N>.json` files of one topic's folder, by version."""
    found = {}
    for path in topic_dir.glob("v*.json"):
        match = VERSION_FILE.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def _resolve(schema: JsonSchema, root: JsonSchema) -> JsonSchema:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _resolve(root["$defs"][ref.removeprefix("#/$defs/")], root)
    return schema


def _branches(schema: JsonSchema, root: JsonSchema) -> Iterator[JsonSchema]:
    schema = _resolve(schema, root)
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives:
        for branch in alternatives:
            yield from _branches(branch, root)
    else:
        yield schema


def _kinds(schema: JsonSchema, root: JsonSchema) -> set[str]:
    """What values a property takes, coarsely: its JSON types, and each enum or const value."""
    kinds: set[str] = set()
    for branch in _branches(schema, root):
        if "const" in branch:
            kinds.add(f"value {branch['const']!r}")
        elif "enum" in branch:
            kinds.update(f"value {value!r}" for value in branch["enum"])
        elif "type" in branch:
            types = branch["type"]
            kinds.update([types] if isinstance(types, str) else types)
        else:
            kinds.add("any")
    if "number" in kinds:
        kinds.discard("integer")  # an integer is a number: number -> integer narrows nothing
    return kinds


def breaking_changes(old: JsonSchema, new: JsonSchema) -> list[str]:
    """Why a message of `new` breaks a reader of `old`, or an old message a reader of `new`.

    Broken: a property of `old` removed; a property that takes a value `old` never allowed (a new
    type, null, or enum value) or is narrowed; a property required in `new` that `old` did not
    require (messages of `old` still on the topic lack it). `schema_version` itself may change.
    """
    problems: list[str] = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name, old_prop in old_props.items():
        if name not in new_props:
            problems.append(f"{name}: removed")
            continue
        if name == VERSION_FIELD:
            continue
        before, after = _kinds(old_prop, old), _kinds(new_props[name], new)
        if "any" in before:
            continue
        if after != before:
            added, dropped = sorted(after - before), sorted(before - after)
            change = "; ".join(
                part
                for part in (
                    added and f"now also {', '.join(added)}",
                    dropped and f"no longer {', '.join(dropped)}",
                )
                if part
            )
            problems.append(f"{name}: retyped ({change})")
    problems += [
        f"{name}: required now, optional or absent before"
        for name in sorted(set(new.get("required", ())) - set(old.get("required", ())))
    ]
    return problems
