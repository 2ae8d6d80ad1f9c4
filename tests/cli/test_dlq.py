"""`itff dlq list|show|replay` against a real broker, as an operator runs them.

The letters are chosen by reason and by the time they failed; a replay sends the original bytes
unchanged, keyed by symbol, each alert once, and skips originals that are not alerts unless asked.
With a consumer running, a `no_model` letter replayed (twice) after its champion was promoted
gives exactly one signal per model, in the database and on the signals topic.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Alert, DeadLetter, ModelEvent, Settings
from bot.kafka import ModelEventPublisher
from consumers.runner import running_consumer
from tests.support.cli import run_itff
from tests.support.consumer import (
    SEED_BARS,
    alerts_for,
    eventually,
    produce,
    produce_alerts,
    publish_champions,
    read_topic,
    registry,
    sample_bars,
    seed_bars,
    signal_rows,
    signals_of,
)
from tests.support.env import child_env
from tests.support.kafka import free_port, topic_reader

NOW = datetime.now(UTC)
SECRET = "hunter2-not-for-the-screen"


async def itff(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_itff, child_env(settings), *args)


def letter(original: bytes, reason: str, failed: datetime, offset: int) -> DeadLetter:
    stage = {"undecodable": "decode", "invalid_bar": "validate", "no_model": "route"}.get(
        reason, "predict"
    )
    return DeadLetter(
        original=original,
        error=f"{reason}: " + "why " * 40,
        reason=reason,
        stage=stage,
        topic="x.alerts",
        partition=0,
        offset=offset,
        failed_at=failed,
    )


async def keyed_records(
    settings: Settings, topic: str, within: float
) -> list[tuple[bytes | None, bytes]]:
    """(key, value) of every record on `topic`, read for `within` seconds from the beginning."""
    consumer = topic_reader(settings.bootstrap, topic)
    await consumer.start()
    found: list[tuple[bytes | None, bytes]] = []
    try:
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            found.extend((r.key, r.value) for rs in batches.values() for r in rs if r.value)
    finally:
        await consumer.stop()
    return found


def rows(output: str) -> list[list[str]]:
    """The table's rows under its header, split into columns (the error last, with spaces)."""
    return [line.split(maxsplit=7) for line in output.splitlines()[2:]]


@pytest.fixture
def originals() -> dict[str, bytes]:
    bars = sample_bars("SPX").iloc[SEED_BARS : SEED_BARS + 2]
    first, second = (a.model_dump_json().encode() for a in alerts_for("SPX", bars))
    edited = json.dumps({"ticker": "SPX", "passphrase": SECRET, "close": -1}).encode()
    return {"garbage": b"\xff\xfe not json", "edited": edited, "first": first, "second": second}


@pytest.fixture
async def letters(kafka_settings: Settings, originals: dict[str, bytes]) -> list[DeadLetter]:
    """Five letters on the DLQ, by offset: undecodable 2 days ago, invalid_bar 1 day ago,
    no_model 1 hour ago, then one alert's two prediction_failed letters (two models) now."""
    chosen = [
        letter(originals["garbage"], "undecodable", NOW - timedelta(days=2), 10),
        letter(originals["edited"], "invalid_bar", NOW - timedelta(days=1), 11),
        letter(originals["first"], "no_model", NOW - timedelta(hours=1), 12),
        letter(originals["second"], "prediction_failed", NOW, 13),
        letter(originals["second"], "prediction_failed", NOW, 13),
    ]
    values = [(None, item.model_dump_json().encode()) for item in chosen]
    await produce(kafka_settings.bootstrap, kafka_settings.topics.dlq, values)
    return chosen


@pytest.mark.kafka
async def test_list_and_show_choose_letters_by_reason_and_time_and_never_print_a_secret(
    kafka_settings: Settings, letters: list[DeadLetter], originals: dict[str, bytes]
) -> None:
    settings = kafka_settings
    first = Alert.model_validate_json(originals["first"])
    listed = await itff(settings, "dlq", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0] == f"{settings.topics.dlq}: 5 dead letters"
    table = rows(listed.stdout)
    assert [row[:3] for row in table] == [
        ["0:0", letters[0].failed_at.isoformat(timespec="seconds"), "undecodable"],
        ["0:1", letters[1].failed_at.isoformat(timespec="seconds"), "invalid_bar"],
        ["0:2", letters[2].failed_at.isoformat(timespec="seconds"), "no_model"],
        ["0:3", letters[3].failed_at.isoformat(timespec="seconds"), "prediction_failed"],
        ["0:4", letters[4].failed_at.isoformat(timespec="seconds"), "prediction_failed"],
    ]
    assert table[2][3:7] == ["route", "x.alerts[0]@12", first.alert_id, "SPX"]
    assert table[0][5:7] == ["-", "-"]
    assert all(row[7].endswith("...") and len(row[7]) <= 80 for row in table)

    async def offsets(*args: str) -> list[str]:
        done = await itff(settings, "dlq", "list", *args)
        assert done.returncode == 0, done.stderr
        return [row[0] for row in rows(done.stdout)]

    assert await offsets("--reason", "no_model") == ["0:2"]
    assert await offsets("--reason", "undecodable", "--reason", "invalid_bar") == ["0:0", "0:1"]
    assert await offsets("--since", "3h") == ["0:2", "0:3", "0:4"]
    until = (NOW - timedelta(hours=12)).isoformat()
    assert await offsets("--until", until) == ["0:0", "0:1"]
    assert await offsets("--since", "3d", "--until", until, "--reason", "invalid_bar") == ["0:1"]
    assert await offsets("--limit", "2") == ["0:0", "0:1"]

    shown = await itff(settings, "dlq", "show", "1")
    assert shown.returncode == 0, shown.stderr
    assert SECRET not in shown.stdout
    assert shown.stdout.split("original value:\n")[1] == (
        json.dumps({"ticker": "SPX", "passphrase": "**********", "close": -1}, indent=2) + "\n"
    )
    alert_shown = await itff(settings, "dlq", "show", "0:2")
    assert f"alert_id:  {first.alert_id}" in alert_shown.stdout.splitlines()
    assert f'"alert_id": "{first.alert_id}"' in alert_shown.stdout
    missing = await itff(settings, "dlq", "show", "0:9")
    assert (missing.returncode, missing.stderr) == (
        1,
        "itff: no dead letter at 0:9; see `itff dlq list`\n",
    )


@pytest.mark.kafka
async def test_replay_sends_the_original_bytes_once_per_alert_keyed_by_symbol(
    kafka_settings: Settings, letters: list[DeadLetter], originals: dict[str, bytes]
) -> None:
    settings = kafka_settings
    dry = await itff(settings, "dlq", "replay", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[0] == (
        "2 skipped: not a valid alert; 1 skipped: the same alert as an earlier letter "
        "(--include-invalid sends those that are not alerts)"
    )
    assert (
        dry.stdout.splitlines()[-1]
        == f"dry run: would replay 2 originals to {settings.topics.alerts}"
    )
    assert [row[0] for row in rows(dry.stdout)[:-1]] == ["0:2", "0:3"]
    env = child_env(settings)
    refused = await asyncio.to_thread(run_itff, env, "dlq", "replay", answer="n\n")
    assert refused.returncode == 1
    assert refused.stdout.endswith(f"replay 2 originals to {settings.topics.alerts}? [y/N]: ")
    assert await keyed_records(settings, settings.topics.alerts, within=2) == []

    recent = await itff(settings, "dlq", "replay", "--since", "3h", "--yes")
    assert recent.returncode == 0, recent.stderr
    assert recent.stdout.splitlines()[-1] == f"replayed 2 originals to {settings.topics.alerts}"
    invalid = await itff(
        settings, "dlq", "replay", "--reason", "undecodable", "--include-invalid", "--yes"
    )
    assert invalid.returncode == 0, invalid.stderr
    sent = await keyed_records(settings, settings.topics.alerts, within=3)
    assert sorted(sent, key=repr) == sorted(
        [(b"SPX", originals["first"]), (b"SPX", originals["second"]), (None, originals["garbage"])],
        key=repr,
    )
    none = await itff(settings, "dlq", "replay", "--reason", "revision_refused", "--yes")
    assert none.stdout == "nothing to replay\n"


def test_an_unreachable_broker_is_one_line_and_exit_1(settings: Settings) -> None:
    env = child_env(settings) | {"ITFF_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    for args in (("list",), ("show", "3"), ("replay", "--yes")):
        done = run_itff(env, "dlq", *args)
        assert done.returncode == 1
        assert done.stderr.startswith(f"itff: cannot reach Kafka at {env['ITFF_KAFKA_BOOTSTRAP']}")
        assert len(done.stderr.splitlines()) == 1, done.stderr


async def promote_all(settings: Settings, versions: dict[str, str]) -> None:
    """The events the pipeline's champion switch sends, so the running consumer reloads."""
    store = registry(settings)
    async with ModelEventPublisher(settings) as events:
        for key, version in versions.items():
            sha256 = store.info(key, version).sha256
            assert sha256 is not None
            event = ModelEvent(model_key=key, version=version, sha256=sha256, event="promoted")
            await events.publish(event)


@pytest.mark.kafka
async def test_a_no_model_letter_replayed_twice_gives_one_signal_per_model(
    kafka_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    settings = kafka_settings
    bars = sample_bars("SPX")
    await seed_bars(session_factory, "SPX", bars.iloc[:SEED_BARS])
    (alert,) = alerts_for("SPX", bars.iloc[SEED_BARS : SEED_BARS + 1])
    async with running_consumer(settings, outcomes=False) as consumer:
        await produce_alerts(settings.bootstrap, settings.topics.alerts, [alert])
        (dead,) = [
            DeadLetter.model_validate_json(value)
            for value in await read_topic(
                settings.bootstrap, settings.topics.dlq, until=lambda v: len(v) >= 1
            )
        ]
        assert (dead.reason, dead.original) == ("no_model", alert.model_dump_json().encode())
        versions = publish_champions(settings, "SPX")
        await promote_all(settings, versions)

        async def served() -> bool:
            return all(consumer.models.served_versions().get(k) == v for k, v in versions.items())

        assert await eventually(served)
        for _ in range(2):
            replayed = await itff(settings, "dlq", "replay", "--reason", "no_model", "--yes")
            assert replayed.returncode == 0, replayed.stderr
            assert replayed.stdout == f"replayed 1 originals to {settings.topics.alerts}\n"
        published = signals_of(
            await read_topic(
                settings.bootstrap,
                settings.topics.signals,
                until=lambda v: len(v) >= 2 * len(versions),
            )
        )
    stored = await signal_rows(session_factory)
    assert sorted((r.alert_id, r.model_key) for r in stored) == sorted(
        (alert.alert_id, key) for key in versions
    )
    # at least once on the topic: the second replay publishes the stored signals again, under the
    # same signal_id, so there is one signal per model there too
    assert len(published) == 2 * len(versions)
    assert {(s.alert_id, s.model_key, s.signal_id) for s in published} == {
        (r.alert_id, r.model_key, r.signal_id) for r in stored
    }
