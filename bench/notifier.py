"""Delivery latency of the notifier: a signal on `itff.signals` to its acknowledgement by a signed
webhook receiver, a Telegram Bot API stub and a Discord webhook stub (local aiohttp servers, the
ones the tests use), per destination, p50/p95, with `itff notifier` running as its own process.

Signals are produced at `--rate` per second for `--seconds`, each with `emitted_at` set as it is
sent; a destination's latency is the time it accepted the request minus `emitted_at` (one clock:
everything runs on this machine). Kafka: `ITFF_KAFKA_BOOTSTRAP` (run_all.py starts one).

    .venv/bin/python bench/notifier.py [--rate 20] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bot.contracts import Settings, Signal, load_settings
from bot.kafka import ensure_topics
from tests.support.destinations import Destinations, Stub, destination_servers
from tests.support.env import child_env

ROOT = Path(__file__).resolve().parents[1]
READY_SECONDS = 120.0
DRAIN_SECONDS = 60.0


def bench_settings(root: Path, bootstrap: str) -> Settings:
    return load_settings(
        env="test",
        kafka_bootstrap=bootstrap,
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}",
        database_url=f"sqlite+aiosqlite:///{root / 'itff.db'}",
        artifact_dir=root / "artifacts",
        log_dir=root / "logs",
    )


def start_notifier(settings: Settings, stubs: Destinations, log: Path) -> subprocess.Popen[bytes]:
    env = child_env(
        settings,
        ITFF_LOG_LEVEL="WARNING",
        ITFF_NOTIFIER_METRICS_PORT="0",
        PYTHONPATH=str(ROOT),
        **stubs.env(),
    )
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", "from bot.cli import main; main()", "notifier"],
            env=env | {"ITFF_LOG_LEVEL": "INFO"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def wait_for(log: Path, text: str) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if text in await asyncio.to_thread(lambda: log.read_text() if log.exists() else ""):
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"the notifier did not log {text!r} in {READY_SECONDS:.0f} s; see {log}")


def signal(n: int) -> Signal:
    action = ("buy", "sell")[n % 2]
    return Signal(
        alert_id=f"bench-{n}",
        symbol=("SPX", "NDX")[n % 2],
        interval="1D",
        bar_time=datetime(2018, 12, 31, tzinfo=UTC),
        model_key="SPX-direction-logreg",
        model_version="bench",
        target="direction",
        prediction=1.0,
        probability=0.6,
        action=action,
        ood=False,
        latency_ms=1.0,
    )


async def produce(settings: Settings, rate: float, seconds: float) -> dict[str, Signal]:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, enable_idempotence=True, acks="all", linger_ms=0
    )
    await producer.start()
    sent: dict[str, Signal] = {}
    try:
        start = time.monotonic()
        for n in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            one = signal(n)
            sent[one.signal_id] = one
            await producer.send(
                settings.topics.signals, one.model_dump_json().encode(), one.symbol.encode()
            )
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def drained(stubs: Destinations, count: int) -> None:
    """Every destination accepted `count` signals, or DRAIN_SECONDS passed."""
    deadline = time.monotonic() + DRAIN_SECONDS
    for stub in stubs.all():
        while len(stub.accepted) < count and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a list the servers append to
            await asyncio.sleep(0.1)


def latencies_ms(stub: Stub, sent: dict[str, Signal]) -> list[float]:
    return [
        (item["at"] - sent[item["signal_id"]].emitted_at.timestamp()) * 1000
        for item in stub.accepted
        if item["signal_id"] in sent
    ]


def figures(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a"
    cuts = statistics.quantiles(values, n=100)
    return f"p50 {cuts[49]:.1f} ms  p95 {cuts[94]:.1f} ms  max {max(values):.1f} ms"


async def main(rate: float, seconds: float) -> None:
    bootstrap = os.environ.get("ITFF_KAFKA_BOOTSTRAP", "localhost:9092")
    root = Path(tempfile.mkdtemp(prefix="itff-bench-notifier-"))
    settings = bench_settings(root, bootstrap)
    await ensure_topics(settings)
    log = root / "notifier.log"
    async with destination_servers(f"whsec_{'YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldA=='}") as stubs:
        notifier = start_notifier(settings, stubs, log)
        try:
            await wait_for(log, "notifier ready")
            sent = await produce(settings, rate, seconds)
            await drained(stubs, len(sent))
        finally:
            notifier.terminate()
            notifier.wait(30)
        print(f"{len(sent)} signals at {rate:g}/s, itff notifier as its own process, local stubs")
        every: list[float] = []
        for stub in stubs.all():
            values = latencies_ms(stub, sent)
            every += values
            print(f"  {stub.name:<9} {len(values):>4} delivered  {figures(values)}")
        print(f"signal to destination, all three: {figures(every)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="signals per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    asyncio.run(main(args.rate, args.seconds))
