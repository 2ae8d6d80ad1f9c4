"""The published contract: docs/asyncapi.yaml and docs/schemas/ equal what the code generates, and
every released `schema_version` of a topic stays readable by the versions after it."""

from __future__ import annotations

import itertools
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel, Field, create_model

from bot.cli.contract import GENERATE, contract_files, incompatibilities, stale
from bot.contracts import Alert, DeadLetter, ModelEvent, Signal
from bot.contracts.compatibility import (
    MESSAGES,
    breaking_changes,
    message_schema,
    released_versions,
    schema_version,
)
from tests.support.cli import ROOT, run_itff

DOCS = ROOT / "docs"
NOW = datetime(2018, 12, 31, tzinfo=UTC)
SIGNAL = Signal(
    alert_id="a" * 32,
    symbol="SPX",
    interval="1D",
    bar_time=NOW,
    model_key="SPX-direction-logreg",
    model_version="20181231T000000Z",
    target="direction",
    prediction=1.0,
    probability=0.61,
    action="buy",
    ood=False,
    latency_ms=3.2,
)
EXAMPLES: dict[str, BaseModel] = {
    "alerts": Alert(
        alert_id="b" * 32,
        source="tradingview",
        symbol="SPX",
        interval="1D",
        bar_time=NOW,
        open=2498.94,
        high=2509.24,
        low=2482.82,
        close=2506.85,
        volume=None,
        extra={"plot_0": 1.5},
    ),
    "signals": SIGNAL,
    "dlq": DeadLetter(original=b"\xff not json", error="x", reason="undecodable", stage="decode"),
    "models": ModelEvent(
        model_key="SPX-direction-logreg", version="v1", sha256="0" * 64, event="promoted"
    ),
}


def test_committed_contract_equals_what_the_code_generates() -> None:
    out_of_date = stale(contract_files(DOCS))
    assert not out_of_date, f"run `{GENERATE}` and commit: {out_of_date}"


def test_asyncapi_names_every_topic_with_its_message_schema() -> None:
    document = yaml.safe_load((DOCS / "asyncapi.yaml").read_text())
    channels = document["channels"]
    assert {c["address"] for c in channels.values()} == {
        "itff.alerts",
        "itff.signals",
        "itff.alerts.dlq",
        "itff.models",
    }
    schemas = document["components"]["schemas"]
    payloads = {m["payload"]["$ref"] for m in document["components"]["messages"].values()}
    assert payloads == {f"#/components/schemas/{m.__name__}" for m in MESSAGES.values()}
    assert schemas["Signal"]["required"] == message_schema(Signal)["required"]


@pytest.mark.parametrize("topic", sorted(MESSAGES))
def test_a_wire_message_validates_against_its_published_schema(topic: str) -> None:
    model = MESSAGES[topic]
    schema = json.loads((DOCS / "schemas" / topic / f"v{schema_version(model)}.json").read_text())
    wire = json.loads(EXAMPLES[topic].model_dump_json())
    jsonschema.validate(wire, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({k: v for k, v in wire.items() if k != schema["required"][0]}, schema)


def _released_pairs() -> list[tuple[str, Path, Path]]:
    pairs = []
    for topic_dir in sorted((DOCS / "schemas").iterdir()):
        versions = list(released_versions(topic_dir).values())
        pairs += [(topic_dir.name, old, new) for old, new in itertools.pairwise(versions)]
    return pairs


def test_every_topic_has_its_current_version_released() -> None:
    for topic, model in MESSAGES.items():
        assert schema_version(model) in released_versions(DOCS / "schemas" / topic), topic


@pytest.mark.parametrize(
    ("topic", "old", "new"),
    _released_pairs() or [pytest.param("", Path(), Path(), marks=pytest.mark.skip("one version"))],
)
def test_each_released_version_keeps_the_one_before_readable(
    topic: str, old: Path, new: Path
) -> None:
    problems = breaking_changes(json.loads(old.read_text()), json.loads(new.read_text()))
    assert not problems, f"{topic} {new.name} breaks readers of {old.name}: {problems}"


def _signal_v2(**fields: Any) -> dict[str, Any]:
    model = create_model("SignalV2", __base__=Signal, **fields)
    return message_schema(model)


V1 = message_schema(Signal)


def test_an_optional_new_field_is_compatible() -> None:
    assert breaking_changes(V1, _signal_v2(horizon=(int | None, None))) == []


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"horizon": (int, ...)}, "horizon: required now"),
        ({"prediction": (str, ...)}, "prediction: retyped (now also string; no longer number)"),
        ({"ood": (bool | None, None)}, "ood: retyped (now also null)"),
        ({"probability": (float, Field(ge=0, le=1))}, "probability: retyped (no longer null)"),
        ({"action": (str, ...)}, "action: retyped"),
    ],
)
def test_breaking_changes_are_named(fields: dict[str, Any], expected: str) -> None:
    problems = breaking_changes(V1, _signal_v2(**fields))
    assert any(p.startswith(expected) for p in problems), problems


def test_a_removed_field_and_a_new_action_are_breaking() -> None:
    v2 = json.loads(json.dumps(V1))
    del v2["properties"]["ood"]
    v2["properties"]["action"]["enum"].append("close")
    assert breaking_changes(V1, v2) == ["action: retyped (now also value 'close')", "ood: removed"]


def test_generate_refuses_to_change_a_released_version_incompatibly(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS / "schemas", docs / "schemas")
    current = Signal.model_fields["schema_version"].default  # the version the code writes
    released = docs / "schemas" / "signals" / f"v{current}.json"
    loose = json.loads(released.read_text())
    loose["properties"]["extra_field"] = {"type": "string"}
    loose["properties"]["prediction"] = {"type": "string"}
    released.write_text(json.dumps(loose))
    problems = incompatibilities(docs, contract_files(docs))
    label = f"signals v{current} against released v{current}"
    assert problems == [
        f"{label}: prediction: retyped (now also number; no longer string)",
        f"{label}: extra_field: removed",
    ]


def test_check_names_the_command_and_generate_writes_the_files(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    checked = run_itff(env, "contract", "generate", "--docs", str(docs), "--check")
    assert checked.returncode == 1
    assert f"run `{GENERATE}`" in checked.stderr
    assert run_itff(env, "contract", "generate", "--docs", str(docs)).returncode == 0
    assert (docs / "asyncapi.yaml").read_text() == (DOCS / "asyncapi.yaml").read_text()
    again = run_itff(env, "contract", "generate", "--docs", str(docs), "--check")
    assert again.returncode == 0, again.stderr
