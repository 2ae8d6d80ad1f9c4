"""Outbox durability cost: enqueueing alerts with SQLite `synchronous=NORMAL` vs `FULL`, one run.

Two SQLite files in one folder (default `var/bench-outbox/`, on the disk the receiver's database
would use: a tmpfs makes fsync free and the comparison meaningless), each migrated to head, each
behind the receiver's own engine (`storage.db.create_engine(url, synchronous=...)`, WAL) and its
own `producers.outbox.Outbox.enqueue` (one committed transaction per alert, the path of an alert
Kafka did not confirm). The payload is a real alert's JSON. The two modes alternate alert by alert
(then block by block when concurrent), so both see the same background load.

Printed per mode: CPU time per alert (the whole process, so aiosqlite's worker thread is
included; an fsync waits without using CPU) and wall time per enqueue, p50/p95/p99/max; then the
same with `--concurrency` enqueues in flight at once (the receiver during an outage under load),
with the alerts per second each mode sustained. Prints figures; it is not a pass/fail test.

`--pool-size N` gives both engines a pool of N connections (default: SQLAlchemy's, 5 + 10 overflow,
as the receiver has): with one connection, concurrent enqueues queue in the pool instead of
contending for SQLite's write lock.

    .venv/bin/python bench/outbox.py [--alerts 2000] [--concurrency 16] [--pool-size N]
        [--dir var/bench-outbox]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import uvloop
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.contracts import TradingViewMessage  # noqa: E402
from producers.outbox import Outbox  # noqa: E402
from producers.publisher import KafkaPublisher  # noqa: E402
from producers.telemetry import ReceiverMetrics  # noqa: E402
from storage.db import Synchronous, create_engine, create_session_factory  # noqa: E402
from storage.migrate import upgrade  # noqa: E402

MODES: tuple[Synchronous, ...] = ("NORMAL", "FULL")
WARMUP = 50


@dataclass
class Figures:
    wall_ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    elapsed_s: float = 0.0
    alerts: int = 0


def payload() -> bytes:
    message = TradingViewMessage.model_validate({
        "ticker": "SPX", "exchange": "SP", "interval": "1D", "time": "2026-11-27T00:00:00Z",
        "open": 6000.5, "high": 6050.25, "low": 5990.0, "close": 6040.75, "volume": 2.1e9,
        "action": "buy",
    })  # fmt: skip
    return message.to_alert(source="tradingview").model_dump_json().encode()


def filesystem(path: Path) -> str:
    """The mount (and its type) holding `path`, from /proc/mounts (Linux), else '?'."""
    try:
        mounts = [line.split()[:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "?"
    resolved = str(path.resolve())
    best = max(
        (m for m in mounts if resolved == m[1] or resolved.startswith(m[1].rstrip("/") + "/")),
        key=lambda m: len(m[1]),
        default=None,
    )
    return f"{best[0]} on {best[1]} ({best[2]})" if best else "?"


def percentiles(values: list[float]) -> str:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return (
        f"p50 {cuts[49]:7.3f}  p95 {cuts[94]:7.3f}  p99 {cuts[98]:7.3f}  max {max(values):7.3f} ms"
    )


async def enqueue(outbox: Outbox, value: bytes) -> float:
    started = time.perf_counter()
    await outbox.enqueue(alert_id=uuid.uuid4().hex, topic="itff.alerts", key=b"SPX", payload=value)
    return (time.perf_counter() - started) * 1e3


async def sequential(
    outboxes: dict[Synchronous, Outbox], value: bytes, alerts: int
) -> dict[Synchronous, Figures]:
    """One enqueue at a time, alternating the modes alert by alert."""
    figures = {mode: Figures() for mode in outboxes}
    for _ in range(alerts):
        for mode, outbox in outboxes.items():
            cpu = time.process_time()
            figures[mode].wall_ms.append(await enqueue(outbox, value))
            figures[mode].cpu_s += time.process_time() - cpu
            figures[mode].alerts += 1
    return figures


async def concurrent(
    outboxes: dict[Synchronous, Outbox], value: bytes, alerts: int, concurrency: int
) -> dict[Synchronous, Figures]:
    """`concurrency` enqueues in flight at once, alternating the modes block by block."""
    figures = {mode: Figures() for mode in outboxes}
    for _ in range(max(alerts // concurrency, 1)):
        for mode, outbox in outboxes.items():
            cpu, started = time.process_time(), time.perf_counter()
            walls = await asyncio.gather(*(enqueue(outbox, value) for _ in range(concurrency)))
            figures[mode].elapsed_s += time.perf_counter() - started
            figures[mode].cpu_s += time.process_time() - cpu
            figures[mode].wall_ms.extend(walls)
            figures[mode].alerts += concurrency
    return figures


def show(title: str, figures: dict[Synchronous, Figures]) -> None:
    print(title)
    for mode, fig in figures.items():
        rate = f"  {fig.alerts / fig.elapsed_s:8.0f} alerts/s" if fig.elapsed_s else ""
        cpu_us = fig.cpu_s / fig.alerts * 1e6
        print(f"  {mode:<6} cpu {cpu_us:7.1f} us/alert  wall {percentiles(fig.wall_ms)}{rate}")
    normal, full = (statistics.median(figures[m].wall_ms) for m in MODES)
    cpu = [figures[m].cpu_s / figures[m].alerts for m in MODES]
    print(f"  FULL/NORMAL: wall p50 x{full / normal:.2f}, cpu x{cpu[1] / cpu[0]:.2f}")


async def run(folder: Path, alerts: int, concurrency: int, pool_size: int | None) -> None:
    engines: list[AsyncEngine] = []
    outboxes: dict[Synchronous, Outbox] = {}
    publisher = KafkaPublisher("127.0.0.1:9")  # never connected: enqueue does not touch Kafka
    pool = {} if pool_size is None else {"pool_size": pool_size, "max_overflow": 0}
    for mode in MODES:
        url = f"sqlite+aiosqlite:///{folder / mode.lower()}.db"
        engine = create_engine(url, synchronous=mode, **pool)
        engines.append(engine)
        outboxes[mode] = Outbox(
            sessions=create_session_factory(engine),
            publisher=publisher,
            metrics=ReceiverMetrics(),
            max_attempts=5,
        )
    value = payload()
    try:
        await sequential(outboxes, value, WARMUP)
        print(
            f"{alerts} alerts per mode, payload {len(value)} bytes, {folder}: {filesystem(folder)}"
        )
        show(
            "one enqueue at a time (alternating alert by alert):",
            await sequential(outboxes, value, alerts),
        )
        show(
            f"{concurrency} enqueues in flight (alternating block by block):",
            await concurrent(outboxes, value, alerts, concurrency),
        )
    finally:
        for engine in engines:
            await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2000, help="alerts per mode and phase")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "bench-outbox")
    parser.add_argument("--pool-size", type=int, default=None, help="connections per engine")
    parser.add_argument("--keep", action="store_true", help="keep the database files")
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    for mode in MODES:
        upgrade(f"sqlite+aiosqlite:///{args.dir / mode.lower()}.db")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores")
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run(args.dir, args.alerts, args.concurrency, args.pool_size))
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
