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

    ITFF_KAFKA_BOOTSTRAP=localhost:9092 .venv/bin/python bench/ingest.py [--count 3000] [--rounds 3]
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

import psutil
import uvloop
from aiokafka import AIOKafkaConsumer

from producers import replay as rp
from producers.replay import ReplaySummary, Shot

SYMBOLS = ("SPX", "NDX")
DATA = Path(__file__).resolve().parents[1] / "data" / "sample"
KINDS = ("bare", "itff")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        from bot.observability import configure_logging
        from bot.settings import load_settings
        from producers import create_app
        from storage.migrate import upgrade

        settings = load_settings()
        configure_logging(level=settings.log_level, json=True, service="itff-webhook-bench")
        upgrade(settings.database_url)
        app = create_app(settings)
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
                    chunk, symbol=symbol, interval="1D", secret=self._secret
                )
        return prepared[:count]


@dataclass
class Run:
    summary: ReplaySummary
    server_cpu_us: float
    client_cpu_us: float
    load: tuple[float, float]


async def measure(server: Server, work: list[Shot], *, rate: float, concurrency: int) -> Run:
    load_before = os.getloadavg()[0]
    server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
    async with rp.client_session(concurrency) as session:
        summary = await rp.fire(session, server.base, work, rate=rate, concurrency=concurrency)
    sent = max(summary.sent, 1)
    return Run(
        summary,
        (server.cpu_seconds() - server_cpu) / sent * 1e6,
        (time.process_time() - client_cpu) / sent * 1e6,
        (load_before, os.getloadavg()[0]),
    )


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
    return (
        f"{name:<22} {s.per_second:7.0f}/s  p50 {s.percentile(50):6.2f}  "
        f"p95 {s.percentile(95):6.2f}  p99 {s.percentile(99):6.2f}  max "
        f"{max(s.latencies_ms, default=0):7.2f} ms  server {run.server_cpu_us:5.0f} us/req  "
        f"client {run.client_cpu_us:4.0f} us/req  load {run.load[0]:.2f}{refused}"
    )


async def bench(args: argparse.Namespace) -> None:
    from bot.kafka_admin import admin_client, ensure_topics
    from bot.settings import load_settings

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
    servers = [start_server(kind, env, workdir / f"{kind}.log") for kind in KINDS]
    try:
        for server in servers:
            await wait_up(server.base)
            await measure(server, source.take(500), rate=0, concurrency=args.concurrency)  # warm
        for _ in range(args.rounds):
            for server in servers:
                work = source.take(args.count)
                runs.setdefault(f"{server.kind} throughput", []).append(
                    await measure(server, work, rate=0, concurrency=args.concurrency)
                )
            for server in servers:
                work = source.take(args.rate * args.seconds)
                runs.setdefault(f"{server.kind} at {args.rate}/s", []).append(
                    await measure(server, work, rate=args.rate, concurrency=args.concurrency)
                )
    finally:
        for server in servers:
            server.process.terminate()
            server.process.wait(timeout=30)
    accepted = {
        i
        for name, rs in runs.items()
        if name.startswith("itff")
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
        "--bootstrap", default=os.environ.get("ITFF_KAFKA_BOOTSTRAP", "localhost:9092")
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
    else:
        uvloop.run(bench(args))


if __name__ == "__main__":
    main()
