"""Ingest benchmark: signed alerts against the real receiver and the real broker (loopback only).

Starts two servers as subprocesses on 127.0.0.1, both through `producers.server.serve` (the code
path of `itff webhook`: uvloop, no access log, tuned collector): the ITFF receiver
(`producers.create_app`, Kafka idempotent producer, acks=all, production log level with one JSON
line per alert) and, as the ceiling, the same server with a bare 202 handler. The load generator
runs in this process (uvloop, requests signed before the clock starts) and alternates between the
two servers round by round, so both see the same background load: first as fast as possible at
a fixed concurrency (throughput), then paced at a fixed rate (latency). CPU time per request of
each server and of the client is read from the kernel, a figure that other work on a shared
machine disturbs far less than a rate. Finally every accepted alert id is looked up on the alerts
topic. Prints figures; it is not a pass/fail test.

`--decompose` splits the receiver's cost, for the record of where the CPU goes: a third server,
the same receiver with the broker taken out (`AcknowledgingPublisher`, a publisher that
acknowledges at once: measurement only, never used by the product), and the Kafka producer alone
(`producers.publisher.KafkaPublisher`, idempotent, acks=all) paced at the same rate in this
process, its CPU per message net of the pacing loop. The broker's CPU per alert is printed for
every run when the broker listens on this machine.

    ITFF_KAFKA_BOOTSTRAP=localhost:9092 .venv/bin/python bench/ingest.py [--count 3000] [--rounds 3]
        [--decompose]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import uvloop
from aiokafka import AIOKafkaConsumer

from producers import replay as rp
from producers.replay import ReplaySummary, Shot

SYMBOLS = ("SPX", "NDX")
DATA = Path(__file__).resolve().parents[1] / "data" / "sample"
KINDS = ("bare", "itff", "itff-nobroker")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AcknowledgingPublisher:
    """Measurement only (`--decompose`): takes every record and acknowledges it at once, so the
    receiver's own cost can be told apart from the Kafka client's and the broker's."""

    bootstrap = "none"
    connected = True

    async def connect(self) -> bool:
        return True

    async def stop(self) -> None:
        return None

    async def send(self, topic: str, key: bytes, value: bytes) -> asyncio.Future[Any]:  # noqa: ARG002
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        delivery.set_result(None)
        return delivery

    async def ping(self, within: float) -> bool:  # noqa: ARG002
        return True


def serve(kind: str, port: int) -> None:
    from aiohttp import web

    from producers.server import serve as serve_app

    if kind == "bare":

        async def accepted(_request: web.Request) -> web.Response:
            return web.json_response({"alert_id": "x", "status": "accepted"}, status=202)

        app = web.Application()
        app.router.add_post("/webhook", accepted)
        app.router.add_get("/health", accepted)
    else:
        from bot.contracts import load_settings
        from bot.runtime import configure_logging
        from producers import create_app
        from storage.migrate import upgrade

        settings = load_settings()
        configure_logging(level=settings.log_level, json=True, service="itff-webhook-bench")
        upgrade(settings.database_url)
        publisher = AcknowledgingPublisher() if kind == "itff-nobroker" else None
        app = create_app(settings, publisher=publisher)
    serve_app(app, host="127.0.0.1", port=port)


@dataclass
class Server:
    kind: str
    process: subprocess.Popen[bytes]
    base: str

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)


def start_server(kind: str, env: dict[str, str], log: Path) -> Server:
    port = free_port()
    with log.open("wb") as sink:  # the server's log lines, as a production receiver writes them
        process = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, "--port", str(port)],
            env=env,
            stderr=sink,
        )
    return Server(kind, process, f"http://127.0.0.1:{port}")


async def wait_up(base: str) -> None:
    async with rp.client_session(1) as session:
        for _ in range(300):
            try:
                await rp.check_reachable(session, base)
            except Exception:
                await asyncio.sleep(0.1)
            else:
                return
    raise SystemExit(f"server at {base} did not start")


class ShotSource:
    """Signed requests, prepared before any clock starts; every alert id is used once."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._bars = {s: rp.read_bars(DATA / f"{s}_1d.csv") for s in SYMBOLS}

    def take(self, count: int) -> list[Shot]:
        prepared: list[Shot] = []
        while len(prepared) < count:
            for symbol, bars in self._bars.items():
                chunk = bars[: (count - len(prepared)) // len(SYMBOLS) + 1]
                prepared += rp.signed_shots(
                    chunk,
                    symbol=symbol,
                    interval="1D",
                    secret=self._secret,
                    run_id=uuid.uuid4().hex,
                )
        return prepared[:count]


@dataclass
class Run:
    summary: ReplaySummary
    server_cpu_us: float
    client_cpu_us: float
    broker_cpu_us: float | None
    load: tuple[float, float]


def broker_process(bootstrap: str) -> psutil.Process | None:
    """The process listening on the bootstrap port on this machine, if any (for its CPU time)."""
    port = int(bootstrap.rsplit(":", 1)[-1])
    for conn in psutil.net_connections(kind="tcp"):
        if (
            conn.status == psutil.CONN_LISTEN
            and conn.laddr
            and conn.laddr.port == port
            and conn.pid
        ):
            return psutil.Process(conn.pid)
    return None


def cpu_seconds(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return float(times.user + times.system)


async def measure(
    server: Server,
    work: list[Shot],
    *,
    rate: float,
    concurrency: int,
    broker: psutil.Process | None = None,
) -> Run:
    load_before = os.getloadavg()[0]
    server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
    broker_cpu = cpu_seconds(broker)
    async with rp.client_session(concurrency) as session:
        summary = await rp.fire(session, server.base, work, rate=rate, concurrency=concurrency)
    sent = max(summary.sent, 1)
    return Run(
        summary,
        (server.cpu_seconds() - server_cpu) / sent * 1e6,
        (time.process_time() - client_cpu) / sent * 1e6,
        (cpu_seconds(broker) - broker_cpu) / sent * 1e6 if broker else None,
        (load_before, os.getloadavg()[0]),
    )


@dataclass
class ProducerRun:
    per_second: float
    latencies_ms: list[float]
    cpu_us: float  # this process's CPU per message, the pacing loop's own cost subtracted


async def producer_alone(bootstrap: str, topic: str, *, rate: int, count: int) -> ProducerRun:
    """`KafkaPublisher` (the receiver's producer) paced at `rate`, each record sent from its own
    task as the receiver's requests do; CPU per message net of the same loop without Kafka."""
    from producers.publisher import KafkaPublisher

    publisher = KafkaPublisher(bootstrap, client_id="itff-bench-producer")
    if not await publisher.connect():
        raise SystemExit(f"Kafka at {bootstrap} is not reachable")
    nothing = AcknowledgingPublisher()
    try:
        for _ in range(200):  # warm: connection, metadata, producer id
            await (await publisher.send(topic, b"SPX", b"{}"))
        runs = [await _paced(sink, topic, rate=rate, count=count) for sink in (nothing, publisher)]
    finally:
        await publisher.stop()
    (base_cpu, _, _), (cpu, latencies, elapsed) = runs
    return ProducerRun(count / elapsed, latencies, (cpu - base_cpu) / count * 1e6)


async def _paced(
    sink: Any, topic: str, *, rate: int, count: int
) -> tuple[float, list[float], float]:
    latencies: list[float] = []
    payload = json.dumps({"alert_id": "x" * 32, "symbol": "SPX", "close": 1.0}).encode()

    async def one(key: bytes) -> None:
        began = time.perf_counter()
        await (await sink.send(topic, key, payload))
        latencies.append((time.perf_counter() - began) * 1000)

    tasks: list[asyncio.Task[None]] = []
    cpu, began = time.process_time(), time.perf_counter()
    for i in range(count):
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(SYMBOLS[i % len(SYMBOLS)].encode())))
    await asyncio.gather(*tasks)
    return time.process_time() - cpu, latencies, time.perf_counter() - began


async def on_topic(bootstrap: str, topic: str, expected: set[str]) -> tuple[int, int]:
    """(accepted ids found on the topic, records on the topic)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            fresh = [json.loads(r.value)["alert_id"] for part in batch.values() for r in part]
            seen += fresh
            if not fresh and expected <= set(seen):
                break
    finally:
        await consumer.stop()
    return len(expected & set(seen)), len(seen)


def line(name: str, run: Run) -> str:
    s = run.summary
    refused = "" if not s.rejected else f"  REJECTED {s.rejected} {dict(s.statuses)}"
    broker = "" if run.broker_cpu_us is None else f"broker {run.broker_cpu_us:4.0f} us/req  "
    return (
        f"{name:<22} {s.per_second:7.0f}/s  p50 {s.percentile(50):6.2f}  "
        f"p95 {s.percentile(95):6.2f}  p99 {s.percentile(99):6.2f}  max "
        f"{max(s.latencies_ms, default=0):7.2f} ms  server {run.server_cpu_us:5.0f} us/req  "
        f"client {run.client_cpu_us:4.0f} us/req  {broker}load {run.load[0]:.2f}{refused}"
    )


async def bench(args: argparse.Namespace) -> None:
    from bot.contracts import load_settings
    from bot.kafka import admin_client, ensure_topics

    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="itff-bench-"))
    env = os.environ | {
        "ITFF_KAFKA_BOOTSTRAP": args.bootstrap,
        "ITFF_TOPIC_PREFIX": prefix,
        "ITFF_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'itff.db'}",
        "ITFF_WEBHOOK_SECRET": secret,
        "ITFF_WEBHOOK_RATE_LIMIT": "1000000/minute",
    }
    settings = load_settings(kafka_bootstrap=args.bootstrap, topic_prefix=prefix)
    await ensure_topics(settings)
    source = ShotSource(secret)
    runs: dict[str, list[Run]] = {}
    kinds = KINDS if args.decompose else KINDS[:2]
    broker = broker_process(args.bootstrap)
    servers = [start_server(kind, env, workdir / f"{kind}.log") for kind in kinds]
    try:
        for server in servers:
            await wait_up(server.base)
            await measure(server, source.take(500), rate=0, concurrency=args.concurrency)  # warm
        for _ in range(args.rounds):
            for server in servers:
                work = source.take(args.count)
                runs.setdefault(f"{server.kind} throughput", []).append(
                    await measure(server, work, rate=0, concurrency=args.concurrency, broker=broker)
                )
            for server in servers:
                work = source.take(args.rate * args.seconds)
                runs.setdefault(f"{server.kind} at {args.rate}/s", []).append(
                    await measure(
                        server, work, rate=args.rate, concurrency=args.concurrency, broker=broker
                    )
                )
    finally:
        for server in servers:
            server.process.terminate()
            server.process.wait(timeout=30)
    producer = None
    if args.decompose:
        count = args.rate * args.seconds
        producer = await producer_alone(
            args.bootstrap, settings.topics.dlq, rate=args.rate, count=count
        )
    accepted = {
        i
        for name, rs in runs.items()
        if name.startswith("itff ")
        for r in rs
        for i in r.summary.accepted_ids
    }
    try:
        found, records = await on_topic(args.bootstrap, settings.topics.alerts, accepted)
    finally:
        async with admin_client(args.bootstrap) as admin:
            mine = [t for t in await admin.list_topics() if t.startswith(f"{prefix}.")]
            await admin.delete_topics(mine)
    report(args, runs, (found, records, len(accepted)), workdir)
    if producer is not None:
        report_producer(args, producer)


def report(
    args: argparse.Namespace, runs: dict[str, list[Run]], topic: tuple[int, int, int], logs: Path
) -> None:
    print(
        f"{args.count} signed alerts per throughput run, {args.rate}/s for {args.seconds} s per "
        f"paced run, concurrency {args.concurrency}, {args.rounds} round(s), {os.cpu_count()} CPUs"
    )
    for name, rs in runs.items():
        for index, run in enumerate(rs, start=1):
            print(line(f"{name} #{index}", run))
    ratios = [
        i.summary.per_second / b.summary.per_second
        for b, i in zip(runs["bare throughput"], runs["itff throughput"], strict=True)
    ]
    if "itff-nobroker throughput" in runs:
        without = [
            i.summary.per_second / b.summary.per_second
            for b, i in zip(runs["bare throughput"], runs["itff-nobroker throughput"], strict=True)
        ]
        print(
            "ratio to bare of the receiver without the broker (decomposition only): "
            + ", ".join(f"{r:.2f}" for r in without)
        )
    cpu = [
        i.server_cpu_us / b.server_cpu_us
        for b, i in zip(runs["bare throughput"], runs["itff throughput"], strict=True)
    ]
    print(
        f"ratio itff/bare throughput per round: {', '.join(f'{r:.2f}' for r in ratios)} "
        f"(median {statistics.median(ratios):.2f}); server CPU per request itff/bare: "
        f"median {statistics.median(cpu):.1f}x"
    )
    found, records, accepted = topic
    print(
        f"accepted by itff (measured runs): {accepted}; of them on the topic: {found}; "
        f"records on the topic: {records} (the 500 warm-up alerts included)"
    )
    lines = sum(1 for _ in (logs / "itff.log").open(encoding="utf-8"))
    print(f"receiver log: {lines} lines in {logs / 'itff.log'}")


def report_producer(args: argparse.Namespace, run: ProducerRun) -> None:
    q = statistics.quantiles(run.latencies_ms, n=100)
    print(
        f"Kafka producer alone (KafkaPublisher, acks=all, idempotent), {len(run.latencies_ms)} "
        f"records paced at {args.rate}/s: {run.per_second:.0f}/s, acknowledgement p50 {q[49]:.2f} "
        f"p99 {q[98]:.2f} ms, {run.cpu_us:.0f} us CPU per record (pacing loop subtracted)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=KINDS)
    parser.add_argument("--port", type=int)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--decompose",
        action="store_true",
        help="also the receiver without the broker, and the Kafka producer alone",
    )
    parser.add_argument(
        "--bootstrap", default=os.environ.get("ITFF_KAFKA_BOOTSTRAP", "localhost:9092")
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
    else:
        uvloop.run(bench(args))


if __name__ == "__main__":
    main()
