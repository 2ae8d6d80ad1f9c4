"""Helpers of the consumer tests: real models on the sample data, bars, alerts, Kafka I/O.

Models are fitted for real (`bot.core.estimators.make_pipeline`) on a slice of the sample bars, with
the project's features, windows, targets and OOD summary, and published to the test's own registry.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from aiokafka import AIOKafkaProducer
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.artifacts import ArtifactRegistry, registry_from_settings
from bot.contracts import Alert, Settings, Signal, model_key
from bot.core import (
    FEATURE_NAMES,
    ModelBundle,
    OodSummary,
    Thresholds,
    build_features,
    make_pipeline,
    make_target,
    neutral_score,
    ood_summary,
    to_windows,
)
from bot.kafka.admin import admin_client
from consumers.app import inference_group
from storage.bars import upsert_frame
from storage.tables import Bar, SignalRow
from tests.support.kafka import topic_reader

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "sample"
SEED_BARS = 300  # bars stored before the stream: warm-up (103) + lookback, with room


def sample_bars(symbol: str) -> pd.DataFrame:
    frame = pd.read_csv(SAMPLE_DIR / f"{symbol}_1d.csv")
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame.set_index("time").astype("float64")


def daily_bars(symbol: str = "SPX") -> pd.DataFrame:
    """The sample on consecutive days: a market open every day (as crypto is), so that a 30-day
    window holds 30 bars."""
    bars = sample_bars(symbol).copy()
    bars.index = pd.date_range(bars.index[0], periods=len(bars), freq="D", name="time")
    return bars


def fit_bundle(
    bars: pd.DataFrame,
    *,
    symbol: str,
    target: str,
    model_type: str,
    version: str,
    lookback: int = 2,
    horizon: int = 1,
) -> ModelBundle:
    """A real fitted model on `bars` (features, windows, target, scaler, OOD summary)."""
    features = build_features(bars).to_numpy(dtype=float)
    y_all = make_target(bars["close"].to_numpy(float), target=target, horizon=horizon)
    windows = to_windows(features, lookback)
    y = y_all[lookback - 1 :]
    keep = np.isfinite(windows).all(axis=1) & np.isfinite(y)
    pipeline = make_pipeline(model_type, target, 7).fit(windows[keep], y[keep])
    ood: OodSummary = ood_summary(pipeline[0].transform(windows[keep]))
    cut = neutral_score(target)
    return ModelBundle(
        symbol=symbol,
        target=target,  # type: ignore[arg-type]
        model_type=model_type,
        version=version,
        pipeline=pipeline,
        feature_names=FEATURE_NAMES,
        lookback=lookback,
        horizon=horizon,
        interval="1D",
        thresholds=Thresholds(buy=cut, sell=cut),
        train_start=bars.index[0].to_pydatetime(),
        train_end=bars.index[-1].to_pydatetime(),
        ood=ood,
        fit_windows=windows[keep],
    )


MODEL_LINES = (("direction", "logreg"), ("return", "ridge"), ("direction", "ridge"))


def publish_champions(
    settings: Settings,
    symbol: str,
    *,
    lines: Iterable[tuple[str, str]] = MODEL_LINES,
    train: pd.DataFrame | None = None,
    version: str = "v1",
) -> dict[str, str]:
    """Fit, publish and promote one model per (target, model type); {key: version}."""
    registry = registry_from_settings(settings)
    bars = train if train is not None else sample_bars(symbol).iloc[:800]
    out: dict[str, str] = {}
    for target, model_type in lines:
        bundle = fit_bundle(
            bars, symbol=symbol, target=target, model_type=model_type, version=version
        )
        published = registry.publish(bundle)
        registry.promote(published.key, published.version)
        out[published.key] = published.version
    return out


def registry(settings: Settings) -> ArtifactRegistry:
    return registry_from_settings(settings)


async def seed_bars(
    session_factory: async_sessionmaker[AsyncSession], symbol: str, bars: pd.DataFrame
) -> None:
    async with session_factory() as session, session.begin():
        await upsert_frame(session=session, symbol=symbol, interval="1D", frame=bars, source="test")


async def interleaved_symbols(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    symbols: list[str],
    per_symbol: int,
) -> tuple[list[str], list[Alert]]:
    """Each symbol gets one direction-logreg champion (trained on the SPX sample) and the seeded
    bars; then `per_symbol` alerts each, interleaved across symbols. Returns (keys, alerts)."""
    bars = sample_bars("SPX")
    keys: list[str] = []
    for symbol in symbols:
        keys += publish_champions(
            settings, symbol, lines=[("direction", "logreg")], train=bars.iloc[:800]
        )
        await seed_bars(session_factory, symbol, bars.iloc[:SEED_BARS])
    streams = {s: alerts_for(s, bars.iloc[SEED_BARS : SEED_BARS + per_symbol]) for s in symbols}
    return keys, [streams[s][i] for i in range(per_symbol) for s in symbols]


def alerts_for(symbol: str, bars: pd.DataFrame, *, prefix: str | None = None) -> list[Alert]:
    """One alert per bar, ids unique to the test run."""
    tag = prefix or uuid.uuid4().hex[:8]
    return [
        Alert(
            alert_id=f"{tag}-{symbol}-{time:%Y%m%d}",
            source="replay",
            symbol=symbol,
            interval="1D",
            bar_time=time.to_pydatetime(),
            open=row.open,
            high=row.high,
            low=row.low,
            close=row.close,
            volume=row.volume,
        )
        for time, row in bars.iterrows()
    ]


async def produce(bootstrap: str, topic: str, values: Iterable[tuple[bytes | None, bytes]]) -> None:
    """Plain aiokafka, idempotent, acks=all: the records are on the broker when this returns."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, value=value, key=key) for key, value in values]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def produce_alerts(bootstrap: str, topic: str, alerts: Iterable[Alert]) -> None:
    await produce(
        bootstrap, topic, ((a.symbol.encode(), a.model_dump_json().encode()) for a in alerts)
    )


async def read_topic(
    bootstrap: str, topic: str, *, until: Callable[[list[bytes]], bool], within: float = 60.0
) -> list[bytes]:
    """Every value on `topic` from the beginning, read with a plain aiokafka consumer (no group)
    until `until(values)` holds or `within` seconds passed."""
    consumer = topic_reader(bootstrap, topic)
    await consumer.start()
    values: list[bytes] = []
    deadline = time.monotonic() + within
    try:
        while not until(values) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            values.extend(r.value for records in batches.values() for r in records if r.value)
    finally:
        await consumer.stop()
    return values


def signals_of(values: Iterable[bytes]) -> list[Signal]:
    return [Signal.model_validate_json(value) for value in values]


def dead_letters_of(values: Iterable[bytes]) -> list[dict[str, object]]:
    return [json.loads(value) for value in values]


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 60.0) -> bool:
    """Poll `check` until it holds; a deadline for a condition, not a timing assertion."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.2)
    return await check()


def counted(name: str, **labels: str) -> float:
    """Sum of a counter of the consumer's registry over the label values not given."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        for sample in metric.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def count_rows(session_factory: async_sessionmaker[AsyncSession], table: type) -> int:
    async with session_factory() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


async def signal_rows(session_factory: async_sessionmaker[AsyncSession]) -> list[SignalRow]:
    async with session_factory() as session:
        return list((await session.execute(select(SignalRow))).scalars())


async def bar_count(session_factory: async_sessionmaker[AsyncSession]) -> int:
    return await count_rows(session_factory, Bar)


def keys(symbol: str, lines: Iterable[tuple[str, str]] = MODEL_LINES) -> list[str]:
    return [model_key(symbol, target, model_type) for target, model_type in lines]


def utc(text: str) -> datetime:
    return pd.Timestamp(text, tz="UTC").to_pydatetime()


async def group_partitions(settings: Settings) -> dict[str, set[int]]:
    """The inference group's members as the broker sees them now: member id -> alert partitions."""
    async with admin_client(settings.bootstrap) as admin:
        responses = await admin.describe_consumer_groups([inference_group(settings)])
    members: dict[str, set[int]] = {}
    for response in responses:
        for group in response.groups:
            for member in group[5]:  # (member_id, ..., member_metadata, member_assignment)
                member_id, assignment = member[0], member[-1]
                decoded = (
                    ConsumerProtocolMemberAssignment.decode(assignment) if assignment else None
                )
                members[member_id] = {
                    partition
                    for topic, partitions in (decoded.assignment if decoded else [])
                    if topic == settings.topics.alerts
                    for partition in partitions
                }
    return members
