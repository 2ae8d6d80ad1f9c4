"""Poison records never stall the consumer; transient failures are retried with backoff.

A record whose processing fails deterministically is found by splitting its batch, and only it
goes to the dead-letter topic (`processing_failed`, with the stage it failed in); the rest of the
batch is stored and published, and the good alerts of its symbol after it are predicted on the
stored bars, which never hold the poison's. The poisons are real records, each failing in its own
stage with everything real (models, SQLite, Kafka):

- `[[[...` nested 100,000 deep: `json.loads` raises `RecursionError` (decode);
- a bar in the year 9999: it was the first poison found (its time does not fit pandas'
  nanoseconds, `OverflowError` in features); since `Alert.bar_time` has bounds
  (`bot/contracts/bars.py`) it is an `invalid_bar` dead letter at validation, and stays in the
  batch to show that the isolation leaves such a letter alone;
- a bar of prices 1e-304: it was a real write-stage poison (features finite, scaler overflow, a
  NaN prediction refused by the NOT NULL `signals.prediction`); since prices are bounded
  (`bot.contracts.schemas.MIN_PRICE`) it is an `invalid_bar` too, and a non-finite prediction is
  a `prediction_failed` letter. Validation leaves no real record that breaks a later stage, so
  the predict-stage poison is a valid bar (a price jump to 1e12) fed to `CrashingModels`, a
  test double of the models only: the real predictor, except that it raises on input that far
  out of distribution, as a buggy model would.

A database locked by another writer is a transient failure: the batch is retried after 1 s, then
2 s, and its signals come once the lock is gone, with nothing dead-lettered.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Alert, DeadLetter, Settings, Signal
from bot.kafka import admin_client
from bot.serving import Predictor
from consumers import telemetry
from consumers.app import inference_group
from consumers.deadletters import MAX_ORIGINAL_BYTES, RecordRef
from consumers.failures import ProcessingFailed, is_transient
from consumers.runner import running_consumer
from consumers.served_models import PredictorModels
from consumers.service import InferenceService
from storage.db import sync_url
from storage.tables import Bar
from tests.support.consumer import (
    SEED_BARS,
    alerts_for,
    count_rows,
    counted,
    eventually,
    produce,
    publish_champions,
    read_topic,
    sample_bars,
    seed_bars,
    signal_rows,
    signals_of,
)
from tests.support.postgres import both_stores

pytestmark = both_stores

BARS = sample_bars("SPX")
NESTED = b"[" * 100_000


def tiny_prices(alert: Alert, after: timedelta = timedelta(hours=12)) -> bytes:
    """The record of an alert of prices 1e-304 (out of the price range: an invalid bar)."""
    price = 1e-304
    document = alert.model_dump(mode="json") | {
        "alert_id": f"{alert.alert_id}-tiny",
        "bar_time": (alert.bar_time + after).isoformat(),
        **dict.fromkeys(("open", "high", "low", "close"), price),
    }
    return json.dumps(document).encode()


def price_jump(alert: Alert, after: timedelta = timedelta(hours=6)) -> Alert:
    """A valid alert whose prices jump to 1e12 (the top of the range), at its own time."""
    return alert.model_copy(
        update={
            "alert_id": f"{alert.alert_id}-jump",
            "bar_time": alert.bar_time + after,
            **dict.fromkeys(("open", "high", "low", "close"), 1e12),
        }
    )


class CrashingModels:
    """Test double of the models only: the real predictor, raising (as a model bug would) on a
    window that holds a feature beyond `LIMIT` (a jump to 1e12 makes returns near 20)."""

    LIMIT = 12.0

    def __init__(self, models: PredictorModels) -> None:
        self.specs = models.specs
        self._predict = models.predict_windows

    def predict_windows(self, key: str, windows: Any) -> Any:
        if (abs(windows[np.isfinite(windows)]) > self.LIMIT).any():
            raise RuntimeError(f"{key}: the model crashed on an out-of-distribution window")
        return self._predict(key, windows)


def year_9999(alert: Alert) -> Alert:
    return alert.model_copy(
        update={"alert_id": f"{alert.alert_id}-9999", "bar_time": alert.bar_time.replace(year=9999)}
    )


def records(items: Sequence[Alert | bytes]) -> list[bytes]:
    return [i if isinstance(i, bytes) else i.model_dump_json().encode() for i in items]


def records_of(alerts: Sequence[Alert], first_offset: int) -> list[RecordRef]:
    return [
        RecordRef(value, "t.alerts", 0, first_offset + i) for i, value in enumerate(records(alerts))
    ]


def service(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> InferenceService:
    models = CrashingModels(PredictorModels.from_settings(settings))
    return InferenceService(
        session_factory=sessions, champion_specs=models.specs, predict=models.predict_windows
    )


def predicted(signals: Sequence[Signal]) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for s in signals:
        found.setdefault(s.alert_id, {})[s.model_key] = s.prediction
    return found


def on_history(predictor: Predictor, alert: Alert) -> dict[str, float]:
    """Every champion on the sample bars up to the alert's bar (no poison among them)."""
    history = BARS.loc[: pd.Timestamp(alert.bar_time)]
    return {p.model_key: p.prediction for p in predictor.predict_bars("SPX", history)}


def stages(letters: Sequence[DeadLetter]) -> dict[int | None, tuple[str, str]]:
    return {letter.offset: (letter.reason, letter.stage) for letter in letters}


@contextmanager
def write_locked(settings: Settings) -> Iterator[None]:
    """Another writer holds the database's write lock (readers go on: SQLite's WAL, PostgreSQL's
    EXCLUSIVE table locks)."""
    if make_url(settings.database_url).get_backend_name() == "postgresql":
        yield from _postgres_write_locked(settings.database_url)
        return
    path = make_url(settings.database_url).database
    assert path is not None
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()


WRITTEN = ("bars", "bar_revisions", "signals", "outcomes")  # the tables a batch writes


def _postgres_write_locked(url: str) -> Iterator[None]:
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"LOCK TABLE {', '.join(WRITTEN)} IN EXCLUSIVE MODE"))
            yield
            connection.rollback()
    finally:
        engine.dispose()


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The database waits 0.1 s for a lock instead of 10 s (SQLite's busy timeout, PostgreSQL's
    lock_timeout), so a held lock fails a write quickly."""
    monkeypatch.setattr("storage.db.SQLITE_BUSY_TIMEOUT_MS", 100)


@pytest.fixture
async def spx(settings: Settings, session_factory: async_sessionmaker[AsyncSession]) -> Predictor:
    """Three SPX champions and SEED_BARS sample bars stored."""
    publish_champions(settings, "SPX")
    await seed_bars(session_factory, "SPX", BARS.iloc[:SEED_BARS])
    return Predictor(PredictorModels.from_settings(settings).predictor.registry)


async def test_poison_records_are_dead_lettered_alone_and_the_good_ones_predicted_cleanly(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], spx: Predictor
) -> None:
    good = alerts_for("SPX", BARS.iloc[SEED_BARS : SEED_BARS + 5])
    batch = records([good[0], price_jump(good[0]), good[1], NESTED, year_9999(good[1]), *good[2:4]])
    batch.append(tiny_prices(good[3]))
    refs = [RecordRef(value, "t.alerts", 0, offset) for offset, value in enumerate(batch)]
    consumer = service(settings, session_factory)

    with pytest.raises(ProcessingFailed) as failed:
        await consumer.process(refs)
    assert not is_transient(failed.value)
    result = await consumer.isolate(refs, failed.value)

    letters = stages(result.dead_letters)
    assert {1: letters[1], 3: letters[3]} == {
        1: ("processing_failed", "predict"),
        3: ("processing_failed", "decode"),
    }
    assert letters[4] == letters[7] == ("invalid_bar", "validate")
    assert len(letters) == len(result.dead_letters) == 4
    by_offset = {letter.offset: letter for letter in result.dead_letters}
    assert "crashed on an out-of-distribution window" in by_offset[1].error
    assert by_offset[1].original == batch[1]
    assert "between 1e-12 and 1e+12" in by_offset[7].error
    # the good alerts after the poisons: predicted on the stored bars, none of the poisons'
    assert predicted(result.signals) == {
        alert.alert_id: pytest.approx(on_history(spx, alert), rel=1e-9) for alert in good[:4]
    }
    assert await count_rows(session_factory, Bar) == SEED_BARS + 4
    assert len(await signal_rows(session_factory)) == 4 * 3
    # the windows in memory hold no poison either: the next batch is predicted as cleanly
    after = await consumer.process(records_of(good[4:], first_offset=len(batch)))
    assert not after.dead_letters
    assert predicted(after.signals) == {
        good[4].alert_id: pytest.approx(on_history(spx, good[4]), rel=1e-9)
    }


@pytest.mark.usefixtures("short_busy_timeout", "spx")
async def test_a_locked_database_is_transient_and_never_isolated(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    refs = records_of(alerts_for("SPX", BARS.iloc[SEED_BARS : SEED_BARS + 3]), first_offset=0)
    consumer = service(settings, session_factory)
    with write_locked(settings), pytest.raises(ProcessingFailed) as failed:
        await consumer.process(refs)
    assert failed.value.stage == "write"
    assert is_transient(failed.value)
    with write_locked(settings), pytest.raises(ProcessingFailed):
        await consumer.isolate(refs, failed.value)  # raised for a rewind, not dead-lettered
    assert len(await signal_rows(session_factory)) == 0
    assert len((await consumer.process(refs)).signals) == 9  # the lock is gone


async def committed_offsets(settings: Settings) -> dict[int, int]:
    """The inference group's committed offsets on the alerts topic, by partition."""
    async with admin_client(settings.bootstrap) as admin:
        offsets = await admin.list_consumer_group_offsets(inference_group(settings))
    return {
        tp.partition: meta.offset
        for tp, meta in offsets.items()
        if tp.topic == settings.topics.alerts and meta.offset >= 0
    }


@pytest.mark.kafka
async def test_poison_alerts_on_the_broker_go_to_the_dlq_and_the_batch_goes_on(
    kafka_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    settings = kafka_settings
    keys = list(publish_champions(settings, "SPX"))
    await seed_bars(session_factory, "SPX", BARS.iloc[:SEED_BARS])
    good = alerts_for("SPX", BARS.iloc[SEED_BARS : SEED_BARS + 3])
    batch = records([good[0], tiny_prices(good[0]), good[1], NESTED, year_9999(good[1]), good[2]])
    before = {
        name: counted(name)
        for name in (
            "itff_consumer_batch_failures_total",
            "itff_consumer_transient_retries_total",
        )
    }
    failed_before = counted("itff_consumer_dead_letters_total", reason="processing_failed")
    # on the topic before the consumer starts: one fetch, one batch with the poisons inside
    await produce(settings.bootstrap, settings.topics.alerts, ((b"SPX", v) for v in batch))
    async with running_consumer(settings, outcomes=False):
        letters = [
            DeadLetter.model_validate_json(value)
            for value in await read_topic(
                settings.bootstrap, settings.topics.dlq, until=lambda v: len(v) >= 3
            )
        ]
        signals = signals_of(
            await read_topic(
                settings.bootstrap,
                settings.topics.signals,
                until=lambda v: len(v) >= len(good) * len(keys),
            )
        )

    assert {(s.alert_id, s.model_key) for s in signals} == {
        (a.alert_id, k) for a in good for k in keys
    }
    rows = await signal_rows(session_factory)
    assert sorted((r.alert_id, r.model_key) for r in rows) == sorted(
        (a.alert_id, k) for a in good for k in keys
    )
    assert await count_rows(session_factory, Bar) == SEED_BARS + len(good)  # no poison's bar
    by_offset = {letter.offset: letter for letter in letters}
    assert stages(letters) == {
        1: ("invalid_bar", "validate"),
        3: ("processing_failed", "decode"),
        4: ("invalid_bar", "validate"),
    }
    assert "between 1e-12 and 1e+12" in by_offset[1].error
    assert "RecursionError" in by_offset[3].error
    assert [by_offset[offset].original for offset in (1, 3, 4)] == [batch[1], batch[3], batch[4]]
    assert {letter.topic for letter in letters} == {settings.topics.alerts}
    # committed past all six records; no rewind, no retry: the poisons never stalled the batch
    assert list((await committed_offsets(settings)).values()) == [len(batch)]
    assert counted("itff_consumer_dead_letters_total", reason="processing_failed") >= (
        failed_before + 1
    )
    assert {name: counted(name) for name in before} == before


@pytest.mark.kafka
@pytest.mark.usefixtures("short_busy_timeout")
async def test_a_locked_database_is_retried_with_backoff_until_the_signals_are_stored(
    kafka_settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = kafka_settings
    # the moment of each failure, taken where the consumer counts it (a poll would see it late)
    failed_at: list[float] = []
    counter = telemetry.TRANSIENT_RETRIES.labels(stage="write")
    count = counter.inc

    def inc(amount: float = 1) -> None:
        failed_at.append(time.monotonic())
        count(amount)

    monkeypatch.setattr(counter, "inc", inc)
    keys = list(publish_champions(settings, "SPX"))
    await seed_bars(session_factory, "SPX", BARS.iloc[:SEED_BARS])
    stream = alerts_for("SPX", BARS.iloc[SEED_BARS : SEED_BARS + 5])
    expected = len(stream) * len(keys)
    retries_before = counted("itff_consumer_transient_retries_total", stage="write")
    letters_before = counted("itff_consumer_dead_letters_total")

    async def retried(times: int) -> bool:
        return counted("itff_consumer_transient_retries_total", stage="write") >= (
            retries_before + times
        )

    async def stored() -> bool:
        return len(await signal_rows(session_factory)) >= expected

    async with running_consumer(settings, outcomes=False):
        with write_locked(settings):
            await produce(
                settings.bootstrap,
                settings.topics.alerts,
                ((b"SPX", v) for v in records(stream)),
            )
            assert await eventually(lambda: retried(2), within=90)
            assert len(await signal_rows(session_factory)) == 0
        assert await eventually(stored, within=60)
        done = time.monotonic()  # polled: at or after the moment the signals were stored
        first, second = failed_at[:2]
        values = await read_topic(
            settings.bootstrap, settings.topics.signals, until=lambda v: len(v) >= expected
        )

    # 1 s after the first failure, then 2 s after the second: the delay doubled
    assert second - first >= 0.9
    assert done - second >= 1.9
    assert counted("itff_consumer_transient_retries_total", stage="write") - retries_before == 2
    assert counted("itff_consumer_dead_letters_total") == letters_before
    rows = await signal_rows(session_factory)
    assert sorted((r.alert_id, r.model_key) for r in rows) == sorted(
        (a.alert_id, k) for a in stream for k in keys
    )
    assert {(s.alert_id, s.model_key) for s in signals_of(values)} == {
        (a.alert_id, k) for a in stream for k in keys
    }


@pytest.mark.kafka
async def test_a_record_too_large_to_dead_letter_whole_is_cut_and_the_partition_goes_on(
    kafka_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Base64 in JSON, a 900 kB record would make a dead letter over Kafka's 1 MB limit: the
    send would fail on every retry. Its dead letter keeps the first bytes and says so."""
    settings = kafka_settings
    keys = list(publish_champions(settings, "SPX", lines=[("direction", "logreg")]))
    await seed_bars(session_factory, "SPX", BARS.iloc[:SEED_BARS])
    huge = b"\xff" * 900_000  # not UTF-8: undecodable
    good = alerts_for("SPX", BARS.iloc[SEED_BARS : SEED_BARS + 1])
    await produce(settings.bootstrap, settings.topics.alerts, [(b"SPX", huge), *encoded(good)])
    async with running_consumer(settings, outcomes=False):
        letters = [
            DeadLetter.model_validate_json(value)
            for value in await read_topic(
                settings.bootstrap, settings.topics.dlq, until=lambda v: len(v) >= 1
            )
        ]
        signals = signals_of(
            await read_topic(
                settings.bootstrap, settings.topics.signals, until=lambda v: len(v) >= 1
            )
        )
    assert [(s.alert_id, s.model_key) for s in signals] == [(good[0].alert_id, keys[0])]
    assert [(letter.reason, letter.offset) for letter in letters] == [("undecodable", 0)]
    assert letters[0].original == huge[:MAX_ORIGINAL_BYTES]
    assert f"the first {MAX_ORIGINAL_BYTES} of 900000 bytes" in letters[0].error
    assert list((await committed_offsets(settings)).values()) == [2]


def encoded(alerts: Sequence[Alert]) -> list[tuple[bytes, bytes]]:
    return [(b"SPX", value) for value in records(alerts)]
