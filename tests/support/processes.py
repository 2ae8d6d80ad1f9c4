"""Consumer processes (`itff consumer`) for the tests that kill, restart or multiply them: start
one with its log and metrics port, wait for it, scrape its counters, feed it a paced stream."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from bot.contracts import Alert, Settings
from tests.support.env import child_env

ITFF = Path(sys.executable).with_name("itff")


def consumer_env(settings: Settings) -> dict[str, str]:
    return child_env(settings, ITFF_LOG_JSON="true")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return int(sock.getsockname()[1])


def start_consumer(
    settings: Settings, log: Path, *, metrics_port: int = 0
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(ITFF), "consumer", "--metrics-port", str(metrics_port)],
            env=consumer_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def scraped(port: int, name: str, **labels: str) -> float:
    """A counter of a consumer process, summed over the label values not given, from its
    /metrics endpoint."""
    async with aiohttp.ClientSession() as http, http.get(f"http://localhost:{port}/metrics") as r:
        text = await r.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def trickle(
    settings: Settings,
    alerts: list[Alert],
    *,
    chunk: int = 5,
    pause: float = 0.1,
    stop: asyncio.Event | None = None,
) -> int:
    """Publish the stream in small chunks so that it is still flowing when a consumer dies; when
    `stop` is set, end after the chunk in hand. Returns how many alerts went out (a prefix)."""
    sent = 0
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        for start in range(0, len(alerts), chunk):
            if stop is not None and stop.is_set():
                break
            for alert in alerts[start : start + chunk]:
                await producer.send(
                    settings.topics.alerts, alert.model_dump_json().encode(), alert.symbol.encode()
                )
            await producer.flush()
            sent = min(start + chunk, len(alerts))
            await asyncio.sleep(pause)
    finally:
        await producer.stop()
    return sent


async def ready(log: Path, count: int) -> bool:
    """The consumer processes logged `consumer ready` `count` times (imports can be slow)."""
    text = await asyncio.to_thread(lambda: log.read_text() if log.exists() else "")
    return text.count('"consumer ready"') >= count
