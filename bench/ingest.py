"""Ingest benchmark: signed alerts against the real receiver and the real broker (loopback only).

Starts two servers as subprocesses on 127.0.0.1: the ITFF receiver (`producers.create_app`,
Kafka idempotent producer, acks=all) and, as the ceiling, the same aiohttp server with a bare 202
handler. The load generator is the replayer's (`producers.replay.fire`): first as fast as possible
at a fixed concurrency (throughput), then paced at a fixed rate (latency). Finally every accepted
alert id is looked up on the alerts topic. Prints figures; it is not a pass/fail test.

    ITFF_KAFKA_BOOTSTRAP=localhost:9092 .venv/bin/python bench/ingest.py [--count 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from producers import replay as rp
from producers.replay import ReplaySummary, Shot

SYMBOLS = ("SPX", "NDX")
DATA = Path(__file__).resolve().parents[1] / "data" / "sample"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(kind: str, port: int) -> None:
    from aiohttp import web

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
        configure_logging(level="WARNING", json=True, service="itff-webhook-bench")
        upgrade(settings.database_url)
        app = create_app(settings)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def start_server(kind: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", str(port)], env=env
    )
    return process, f"http://127.0.0.1:{port}"


async def wait_up(base: str) -> None:
    async with rp.client_session(1) as session:
        for _ in range(200):
            try:
                await rp.check_reachable(session, base)
            except Exception:
                await asyncio.sleep(0.1)
            else:
                return
    raise SystemExit(f"server at {base} did not start")


def shots(count: int, secret: str) -> list[Shot]:
    per_symbol = count // len(SYMBOLS) + 1
    prepared: list[Shot] = []
    for symbol in SYMBOLS:
        bars = rp.read_bars(DATA / f"{symbol}_1d.csv")[-per_symbol:]
        prepared += rp.signed_shots(bars, symbol=symbol, interval="1D", secret=secret)
    return prepared[:count]


async def load(base: str, work: list[Shot], *, rate: float, concurrency: int) -> ReplaySummary:
    async with rp.client_session(concurrency) as session:
        return await rp.fire(session, base, work, rate=rate, concurrency=concurrency)


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


def report(name: str, summary: ReplaySummary) -> None:
    print(f"[{name}]")
    for line in summary.lines():
        print("   ", line)


async def bench(args: argparse.Namespace) -> None:
    from bot.kafka_admin import admin_client, ensure_topics
    from bot.settings import load_settings

    secret = rp_secret()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="itff-bench-"))
    env = os.environ | {
        "ITFF_KAFKA_BOOTSTRAP": args.bootstrap,
        "ITFF_TOPIC_PREFIX": prefix,
        "ITFF_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'itff.db'}",
        "ITFF_WEBHOOK_SECRET": secret,
        "ITFF_WEBHOOK_RATE_LIMIT": "1000000/minute",
        "ITFF_LOG_LEVEL": "WARNING",
    }
    settings = load_settings(kafka_bootstrap=args.bootstrap, topic_prefix=prefix)
    await ensure_topics(settings)
    results: dict[str, ReplaySummary] = {}
    accepted: set[str] = set()
    try:
        for kind in ("bare", "itff"):
            process, base = start_server(kind, env)
            try:
                await wait_up(base)
                await load(base, shots(200, secret), rate=0, concurrency=args.concurrency)  # warm
                work = shots(args.count, secret)
                results[f"{kind} throughput"] = await load(
                    base, work, rate=0, concurrency=args.concurrency
                )
                paced = shots(args.rate * args.seconds, secret)
                results[f"{kind} at {args.rate}/s"] = await load(
                    base, paced, rate=args.rate, concurrency=args.concurrency
                )
                if kind == "itff":
                    for name, summary in results.items():
                        if name.startswith("itff"):
                            accepted |= set(summary.accepted_ids)
            finally:
                process.terminate()
                process.wait(timeout=30)
        found, records = await on_topic(args.bootstrap, settings.topics.alerts, accepted)
    finally:
        async with admin_client(args.bootstrap) as admin:
            mine = [t for t in await admin.list_topics() if t.startswith(f"{prefix}.")]
            await admin.delete_topics(mine)
    for name, summary in results.items():
        report(name, summary)
    bare, real = results["bare throughput"], results["itff throughput"]
    print(f"ratio itff/bare throughput: {real.per_second / bare.per_second:.2f}")
    print(
        f"accepted by itff (measured runs): {len(accepted)}; of them on the topic: {found}; "
        f"records on the topic: {records} (the 200 warm-up alerts included)"
    )


def rp_secret() -> str:
    import base64
    import secrets

    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=("bare", "itff"))
    parser.add_argument("--port", type=int)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument(
        "--bootstrap", default=os.environ.get("ITFF_KAFKA_BOOTSTRAP", "localhost:9092")
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
    else:
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
