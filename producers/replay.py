"""The bar replayer: a CSV of bars sent to the receiver as TradingView alerts or signed requests.

The demo path for a new user (`itff replay data/sample/SPX_1d.csv --limit 50`) and the load
generator of `bench/ingest.py`: paced at a fixed rate, bounded concurrency, latency percentiles.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from standardwebhooks.webhooks import Webhook

from bot.contracts import BadInput, TransientError

CSV_COLUMNS = ("time", "open", "high", "low", "close", "volume")
HEALTH_TIMEOUT_S = 3.0
REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Shot:
    """One prepared request."""

    path: str
    body: bytes
    headers: dict[str, str]


@dataclass
class ReplaySummary:
    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    accepted_ids: list[str] = field(default_factory=list)

    def record(self, outcome: str, latency_ms: float, alert_id: str | None) -> None:
        self.sent += 1
        self.statuses[outcome] += 1
        self.latencies_ms.append(latency_ms)
        if alert_id and outcome in {"accepted", "queued"}:
            self.accepted_ids.append(alert_id)

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]

    @property
    def rejected(self) -> int:
        kept = {"accepted", "queued", "duplicate"}
        return sum(n for outcome, n in self.statuses.items() if outcome not in kept)

    @property
    def per_second(self) -> float:
        accepted = self.statuses["accepted"] + self.statuses["queued"]
        return accepted / self.elapsed_s if self.elapsed_s else math.nan

    def lines(self) -> list[str]:
        s, worst = self.statuses, max(self.latencies_ms, default=math.nan)
        counts = (
            f"sent {self.sent}  accepted {s['accepted']}  queued {s['queued']}  "
            f"duplicate {s['duplicate']}  rejected {self.rejected}"
        )
        latency = (
            f"latency ms  p50 {self.percentile(50):.2f}  p95 {self.percentile(95):.2f}  "
            f"p99 {self.percentile(99):.2f}  max {worst:.2f}"
        )
        rate = f"{self.per_second:.0f} accepted/s over {self.elapsed_s:.2f} s"
        refused = [
            f"  {outcome}: {n}"
            for outcome, n in sorted(s.items())
            if outcome not in {"accepted", "queued", "duplicate"}
        ]
        return [counts, latency, rate, *refused]


def read_bars(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Bars of a `time,open,high,low,close,volume` CSV, oldest first."""
    if not path.is_file():
        raise BadInput(f"{path} is not a file; give a CSV of time,open,high,low,close,volume")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = set(CSV_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise BadInput(f"{path} lacks the column(s) {sorted(missing)}")
        bars = []
        for line, row in enumerate(reader, start=2):
            try:
                bars.append({"time": row["time"]} | {c: float(row[c]) for c in CSV_COLUMNS[1:]})
            except ValueError as exc:
                raise BadInput(f"{path}:{line}: {exc}") from exc
    return bars[-limit:] if limit else bars


def symbol_from(path: Path) -> str:
    return path.stem.split("_")[0].upper()


def tradingview_shots(
    bars: Sequence[dict[str, Any]], *, symbol: str, interval: str, passphrase: str
) -> Iterator[Shot]:
    for bar in bars:
        message = _message(bar, symbol, interval) | {"passphrase": passphrase}
        yield Shot("/webhook/tradingview", json.dumps(message).encode(), _JSON)


def signed_shots(
    bars: Sequence[dict[str, Any]], *, symbol: str, interval: str, secret: str, run_id: str = ""
) -> Iterator[Shot]:
    """Signed requests, one per bar. A bar's `webhook-id` is derived from the bar (and `run_id`),
    so replaying the same CSV again is answered `duplicate` and adds no signal, as a TradingView
    replay does; a benchmark gives each run its own `run_id` to send fresh alerts."""
    webhook = Webhook(secret)
    for bar in bars:
        body = json.dumps(_message(bar, symbol, interval))
        key = f"{run_id}|{symbol.upper()}|{interval}|{bar['time']}".encode()
        msg_id, now = f"msg_{hashlib.sha256(key).hexdigest()[:24]}", datetime.now(UTC)
        headers = _JSON | {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": webhook.sign(msg_id, now, body),
        }
        yield Shot("/webhook", body.encode(), headers)


_JSON = {"Content-Type": "application/json"}


def _message(bar: dict[str, Any], symbol: str, interval: str) -> dict[str, Any]:
    return {"ticker": symbol, "exchange": "REPLAY", "interval": interval, **bar} | {
        "source": "replay"
    }


def outcome_of(status: int, body: dict[str, Any]) -> str:
    if status == 202:  # noqa: PLR2004
        return "queued" if body.get("queued") else "accepted"
    if status == 200 and body.get("status") == "duplicate":  # noqa: PLR2004
        return "duplicate"
    return str(status)


async def check_reachable(session: aiohttp.ClientSession, base_url: str) -> None:
    try:
        async with session.get(f"{base_url}/health", timeout=_timeout(HEALTH_TIMEOUT_S)) as r:
            await r.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise TransientError(
            f"the receiver at {base_url} is not reachable ({type(exc).__name__}); "
            "start it with `itff webhook` or pass --url"
        ) from exc


def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds)


async def _send(
    session: aiohttp.ClientSession, base_url: str, shot: Shot
) -> tuple[str, float, Any]:
    started = time.perf_counter()
    try:
        async with session.post(
            f"{base_url}{shot.path}", data=shot.body, headers=shot.headers
        ) as r:
            body = await r.json(content_type=None)
            status = r.status
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
        return type(exc).__name__, (time.perf_counter() - started) * 1000, None
    latency = (time.perf_counter() - started) * 1000
    return outcome_of(status, body), latency, body.get("alert_id")


async def fire(
    session: aiohttp.ClientSession,
    base_url: str,
    shots: Sequence[Shot],
    *,
    rate: float,
    concurrency: int,
    on_result: Callable[[], None] | None = None,
) -> ReplaySummary:
    """Send every shot, paced at `rate` per second (0 = as fast as possible), at most
    `concurrency` at a time."""
    summary = ReplaySummary()
    gate = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def one(shot: Shot) -> None:
        try:
            summary.record(*await _send(session, base_url, shot))
        finally:
            gate.release()
            if on_result:
                on_result()

    tasks = []
    for index, shot in enumerate(shots):
        if rate > 0:
            await asyncio.sleep(max(0.0, started + index / rate - loop.time()))
        await gate.acquire()
        tasks.append(asyncio.create_task(one(shot)))
    await asyncio.gather(*tasks)
    summary.elapsed_s = loop.time() - started
    return summary


def client_session(concurrency: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=concurrency)
    return aiohttp.ClientSession(connector=connector, timeout=_timeout(REQUEST_TIMEOUT_S))
