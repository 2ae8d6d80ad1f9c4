"""End-to-end latency and throughput: TradingView POST -> webhook -> Kafka -> consumer -> SQLite and
`itff.signals`, with 3 champion models per symbol. Prints figures; asserts nothing.

The receiver (`itff webhook`) and the consumer (`itff consumer`) run as their own processes, as in
production; this process posts alerts at fixed rates (loopback only, a bounded count per rate) and
reads the signals topic with a plain aiokafka consumer. Latency = from the POST being sent to the
signal being read downstream (per signal); `Signal.latency_ms` (receipt -> emission) is also shown.

    ITFF_KAFKA_BOOTSTRAP=localhost:9092 .venv/bin/python bench/e2e.py [--rates 100,500,2000]
        [--seconds 5] [--symbols 4] [--direct] [--store sqlite,postgresql]

`--store` runs the whole bench once per store (`postgresql`: a local server of `itff postgres`,
fsync on, in a temporary folder) and ends with the stores' figures side by side.

After each rate, the consumer's own metrics (`itff_consumer_batch_stage_seconds`) say where a
batch's time went: read, infer, write, publish (until Kafka acknowledged), commit, as means per
batch, with the mean batch size.

`--direct` publishes the alerts to Kafka itself (no receiver): the consumer's share of the path.
`--inprocess` runs no Kafka client: `InferenceService.process` (decode, features, 3 models per
symbol, one SQLite transaction) on batches of alert records, in this process; it prints alerts/s
per batch size, with the consumer's SQLite write (one synchronous transaction in the worker thread)
and the aiosqlite one alternated (`--profile FILE` writes a cProfile of the former), for each
serving runtime (`--runtimes compiled,sklearn`: the same models, the same batches, one run), with
the process CPU time per alert (the goal: at most 0.3 ms at 4 symbols x 3 champions, batches of 10,
printed per runtime; the runtimes and writes take turns every 5 batches, so that a shared
machine's drift weighs on each alike; `--apart N` runs each runtime in a process of its own on a
fresh database instead, alternating N rounds, and prints the medians), then where one 10-alert
batch's infer stage goes (features, model inputs, predictor calls: input check, model, OOD
distance, the rest; signals; other), per runtime.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pandas as pd
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import sessionmaker

from bot import postgres
from bot.artifacts import registry_from_settings
from bot.contracts import (
    Alert,
    ItffError,
    Settings,
    Signal,
    TradingViewMessage,
    load_settings,
)
from bot.kafka import admin_client, ensure_topics
from bot.serving import Predictor
from consumers.deadletters import RecordRef
from consumers.served_models import PredictorModels
from consumers.service import BatchResult, InferenceService, _group
from storage.db import (
    WalCheckpointer,
    create_engine,
    create_session_factory,
    create_sync_sqlite_engine,
)
from storage.migrate import upgrade_async

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.consumer import fit_bundle, sample_bars, seed_bars
from tests.support.env import child_env

ITFF = Path(sys.executable).with_name("itff")
GOAL_CPU_MS, GOAL_BATCH = 0.3, 10
CPU_RESULT = "cpu-result"
Lines = tuple[tuple[str, str], ...]  # (target, model_type) of each champion of a symbol
LINES: Lines = (("direction", "logreg"), ("return", "ridge"), ("direction", "ridge"))


def parse_lines(text: str) -> Lines:
    """`direction:logreg,return:ridge,...` -> the champions of each symbol."""
    lines = tuple(tuple(part.split(":", 1)) for part in text.split(","))
    if any(len(line) != 2 for line in lines):
        raise SystemExit(f"--champions takes target:model_type,...; got {text!r}")
    return lines  # type: ignore[return-value]


SEED = 300
PASSPHRASE = "bench-passphrase-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_settings(root: Path, bootstrap: str, database_url: str | None = None) -> Settings:
    return load_settings(
        env="test",
        kafka_bootstrap=bootstrap,
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}",
        database_url=database_url or f"sqlite+aiosqlite:///{root / 'itff.db'}",
        artifact_dir=root / "artifacts",
        log_dir=root / "logs",
        tradingview_passphrase=PASSPHRASE,
        webhook_rate_limit="10000000/minute",
        log_level="WARNING",
    )


def webhook_env(settings: Settings, port: int) -> dict[str, str]:
    return child_env(
        settings,
        ITFF_TRADINGVIEW_PASSPHRASE=PASSPHRASE,
        ITFF_WEBHOOK_RATE_LIMIT="10000000/minute",
        ITFF_WEBHOOK_PORT=str(port),
        ITFF_WEBHOOK_HOST="127.0.0.1",
        ITFF_LOG_LEVEL="WARNING",
    )


@dataclass
class Stream:
    """Synthetic continuation of a real series: bootstrapped daily returns, one bar per day."""

    symbol: str
    last_time: pd.Timestamp
    last_close: float
    returns: np.ndarray
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(7))

    def next_body(self) -> dict[str, object]:
        self.last_time += pd.Timedelta(days=1)
        ret = float(self.rng.choice(self.returns))
        close = self.last_close * float(np.exp(ret))
        open_ = self.last_close
        high, low = max(open_, close) * 1.002, min(open_, close) * 0.998
        self.last_close = close
        return {
            "passphrase": PASSPHRASE,
            "ticker": self.symbol,
            "interval": "1D",
            "time": self.last_time.isoformat().replace("+00:00", "Z"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": 1e9,
        }


async def prepare(
    settings: Settings, symbols: list[str], *, topics: bool = True, lines: Lines = LINES
) -> list[Stream]:
    if topics:
        await ensure_topics(settings)
    await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url)
    sessions = create_session_factory(engine)
    registry = registry_from_settings(settings)
    streams = []
    for i, symbol in enumerate(symbols):
        bars = sample_bars("SPX" if i % 2 == 0 else "NDX")
        for target, model_type in lines:
            bundle = fit_bundle(
                bars.iloc[:800], symbol=symbol, target=target, model_type=model_type, version="v1"
            )
            published = registry.publish(bundle)
            registry.promote(published.key, published.version)
        await seed_bars(sessions, symbol, bars.iloc[:SEED])
        returns = np.diff(np.log(bars["close"].to_numpy()))
        streams.append(
            Stream(symbol, bars.index[SEED - 1], float(bars["close"].iloc[SEED - 1]), returns)
        )
    await engine.dispose()
    return streams


@dataclass
class Run:
    rate: int
    sent_at: dict[str, float] = field(default_factory=dict)  # alert_id -> monotonic send time
    latencies: list[float] = field(default_factory=list)  # seconds, per signal
    emission: list[float] = field(default_factory=list)  # Signal.latency_ms
    received: int = 0
    last_received: float = 0.0
    errors: int = 0
    # per alert, wall-clock stamps of its way (seconds): see `TRACE`
    stamps: dict[str, dict[str, float]] = field(default_factory=dict)


# an alert's way, stamp by stamp (wall clock, one machine): the bench's POST, the receiver's
# receipt (`Alert.received_at`), the receiver's producer taking the record (its Kafka timestamp),
# the 202 read by the bench, the prediction (`Signal.emitted_at`), the consumer's producer taking
# the signal (its Kafka timestamp), the signal read downstream
TRACE = (
    ("POST -> receipt", "posted", "receipt"),
    ("receipt -> alert to producer", "receipt", "alert_sent"),
    ("alert to producer -> 202 read", "alert_sent", "answered"),
    ("alert to producer -> prediction", "alert_sent", "emitted"),
    ("prediction -> signal to producer", "emitted", "signal_sent"),
    ("signal to producer -> read", "signal_sent", "read"),
    ("POST -> signal read", "posted", "read"),
)


async def read_signals(settings: Settings, runs: dict[str, Run], stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        settings.topics.signals,
        settings.topics.alerts,
        bootstrap_servers=settings.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100)
            now = time.monotonic()
            for tp, records in batches.items():
                for record in records:
                    if tp.topic == settings.topics.alerts:
                        stamp_alert(runs, record.value, record.timestamp)
                        continue
                    sig = Signal.model_validate_json(record.value)
                    run = runs.get(sig.alert_id)
                    if run is None or sig.alert_id not in run.sent_at:
                        continue
                    stamps = run.stamps.setdefault(sig.alert_id, {})
                    if "read" not in stamps:
                        stamps["read"] = time.time()
                        stamps["emitted"] = sig.emitted_at.timestamp()
                        stamps["signal_sent"] = record.timestamp / 1000
                    run.latencies.append(now - run.sent_at[sig.alert_id])
                    run.emission.append(sig.latency_ms)
                    run.received += 1
                    run.last_received = now
    finally:
        await consumer.stop()


def stamp_alert(runs: dict[str, Run], value: bytes | None, timestamp: int) -> None:
    alert = Alert.model_validate_json(value or b"{}")
    run = runs.get(alert.alert_id)
    if run is not None:
        stamps = run.stamps.setdefault(alert.alert_id, {})
        stamps["receipt"] = alert.received_at.timestamp()
        stamps["alert_sent"] = timestamp / 1000


def report_trace(run: Run) -> None:
    """Where an alert's time went, per segment of `TRACE`: median and mean in ms (Kafka
    timestamps have millisecond resolution)."""
    parts = []
    for name, begin, end in TRACE:
        spans = [(s[end] - s[begin]) * 1000 for s in run.stamps.values() if begin in s and end in s]
        if spans:
            parts.append(f"{name} {np.median(spans):.1f}/{np.mean(spans):.1f}")
    print(f"          way of an alert, ms median/mean: {'; '.join(parts)}")


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, object],
    run: Run,
    index: dict[str, Run],
) -> None:
    # registered before sending: a signal may be read before this task sees the 202
    alert_id = TradingViewMessage.model_validate(body).to_alert(source="tradingview").alert_id
    run.sent_at[alert_id] = time.monotonic()
    stamps = run.stamps.setdefault(alert_id, {})
    stamps["posted"] = time.time()
    index[alert_id] = run
    try:
        async with session.post(url, json=body) as response:
            payload = await response.json()
            stamps["answered"] = time.time()
            if response.status == 202 and payload["alert_id"] == alert_id:
                return
    except aiohttp.ClientError:
        pass
    run.errors += 1
    del run.sent_at[alert_id]


async def drive_direct(
    producer: AIOKafkaProducer,
    topic: str,
    *,
    streams: list[Stream],
    run: Run,
    seconds: float,
    index: dict[str, Run],
) -> float:
    """`--direct`: the same alerts straight to Kafka (no webhook), `received_at` = send time."""
    total = int(run.rate * seconds)
    start = time.monotonic()
    for i in range(total):
        delay = start + i / run.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        alert = TradingViewMessage.model_validate(streams[i % len(streams)].next_body()).to_alert(
            source="replay"
        )
        run.sent_at[alert.alert_id] = time.monotonic()
        index[alert.alert_id] = run
        await producer.send(topic, alert.model_dump_json().encode(), alert.symbol.encode())
    await producer.flush()
    return time.monotonic() - start


async def drive(
    url: str, streams: list[Stream], run: Run, seconds: float, index: dict[str, Run]
) -> float:
    """Post `rate` alerts per second for `seconds`, round-robin over the symbols."""
    total = int(run.rate * seconds)
    connector = aiohttp.TCPConnector(limit=256)
    tasks = []
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.monotonic()
        for i in range(total):
            delay = start + i / run.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            body = streams[i % len(streams)].next_body()
            tasks.append(asyncio.create_task(post(session, url, body, run, index)))
        await asyncio.gather(*tasks)
        return time.monotonic() - start


@dataclass(frozen=True)
class Figures:
    """One rate's outcome: latency percentiles (ms) and whether the stack kept up."""

    rate: int
    received: int
    expected: int
    e2e: tuple[float, float, float]  # POST -> signal read: p50, p95, p99
    emission: tuple[float, float, float]  # Signal.latency_ms (receipt -> prediction)
    achieved: float  # alerts/s the sender reached
    sustained: bool
    cpu: dict[str, float] = field(default_factory=dict)  # CPU ms per alert, by process

    def short(self) -> str:
        """For the side-by-side store table."""
        return (
            f"{self.received}/{self.expected} p50 {self.e2e[0]:6.1f} p99 {self.e2e[2]:7.1f} "
            f"{'ok' if self.sustained else 'BACKLOG'}"
        )


def percentiles(values: list[float], scale: float = 1.0) -> tuple[float, float, float]:
    if not values:
        return (float("nan"),) * 3
    p50, p95, p99 = np.percentile(np.array(values) * scale, [50, 95, 99])
    return float(p50), float(p95), float(p99)


def report(run: Run, duration: float, models_per_alert: int, drained: float) -> Figures:
    """Prints the rate's figures and returns them.

    Sustained: every signal arrived, the backlog drained within 2 s of the last POST, the last
    tenth's latency did not grow past 3x the first tenth's (+50 ms), and the sender reached at
    least 90 % of the rate (below that the sender, not the stack, was the limit)."""
    expected = len(run.sent_at) * models_per_alert
    lat = np.array(run.latencies) * 1000
    achieved = len(run.sent_at) / duration if duration else 0.0
    if lat.size == 0:
        print(f"{run.rate:>6}/s  no signals received ({run.errors} errors)")
        return Figures(
            run.rate, 0, expected, percentiles([]), percentiles([]), achieved, sustained=False
        )
    tenth = max(1, lat.size // 10)
    first, last = np.median(lat[:tenth]), np.median(lat[-tenth:])
    sustained = (
        run.received == expected
        and drained < 2.0
        and last < 3 * first + 50
        and achieved >= 0.9 * run.rate
    )
    figures = Figures(
        run.rate,
        run.received,
        expected,
        percentiles(run.latencies, 1000),
        percentiles(run.emission),
        achieved,
        sustained,
    )
    e2e, emission = figures.e2e, figures.emission
    print(
        f"{run.rate:>6}/s  sent {len(run.sent_at):>6} in {duration:5.1f}s ({achieved:6.0f}/s)  "
        f"signals {run.received}/{expected}  "
        f"e2e ms p50 {e2e[0]:7.1f} p95 {e2e[1]:7.1f} p99 {e2e[2]:7.1f}  "
        f"(receipt->emission p50 {emission[0]:6.1f} p95 {emission[1]:6.1f})  "
        f"first/last decile p50 {first:6.1f}/{last:6.1f}  drain {drained:4.1f}s  "
        f"errors {run.errors}  {'sustained' if sustained else 'BACKLOG'}"
    )
    report_trace(run)
    return figures


STAGES = ("read", "infer", "write", "publish", "commit")


async def consumer_totals(url: str) -> dict[str, float]:
    """Sums and counts of the consumer's batch-stage and batch-size histograms."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in ("itff_consumer_batch_stage_seconds", "itff_consumer_batch_records"):
            continue
        for sample in family.samples:
            if sample.name.endswith(("_sum", "_count")):
                stage = sample.labels.get("stage", "records")
                totals[f"{stage}{sample.name[sample.name.rindex('_') :]}"] = sample.value
    return totals


def stage_sums() -> dict[str, float]:
    """This process's `itff_consumer_batch_stage_seconds` sums, by stage (`--inprocess`)."""
    return {
        stage: REGISTRY.get_sample_value("itff_consumer_batch_stage_seconds_sum", {"stage": stage})
        or 0.0
        for stage in STAGES
    }


def report_stages(before: dict[str, float], after: dict[str, float]) -> None:
    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    batches = delta("records_count")
    if not batches:
        return
    parts = [
        f"{stage} {delta(f'{stage}_sum') / count * 1000:.1f}"
        for stage in STAGES
        if (count := delta(f"{stage}_count"))
    ]
    print(
        f"          consumer per batch (means): {delta('records_sum') / batches:.1f} records, "
        f"{int(batches)} batches; ms: {', '.join(parts)}"
    )


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([str(ITFF), *args], env=env, stdout=out, stderr=subprocess.STDOUT)


async def wait_ready(url: str, within: float = 240.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {within:.0f}s")


async def wait_consumer(log: Path, within: float = 240.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        text = await asyncio.to_thread(lambda: log.read_text() if log.exists() else "")
        if "consumer ready" in text:
            return
        await asyncio.sleep(0.5)
    raise SystemExit(f"the consumer did not start within {within:.0f}s; see {log}")


@contextmanager
def store_url(store: str) -> Iterator[str | None]:
    """None (the bench's SQLite file) or a local PostgreSQL server's database, as
    `itff postgres start` runs it (fsync on), stopped afterwards."""
    if store == "sqlite":
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="itff-bench-pg-"))
    folder.chmod(0o755)  # the server's system user must reach its data under root
    server = postgres.LocalPostgres(
        data_dir=folder / "postgres", bin_dir=postgres.find_bin_dir(), port=free_port()
    )
    result = postgres.start(server)
    try:
        yield server.url(result.port)
    finally:
        postgres.stop(server)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Stack:
    """The receiver and the consumer running as processes, a signal reader, a sender."""

    settings: Settings
    streams: list[Stream]
    url: str  # the webhook, or "" with `--direct`
    metrics_url: str
    producer: AIOKafkaProducer
    lines: Lines = LINES
    index: dict[str, Run] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)  # the processes whose CPU is counted

    async def send(self, run: Run, seconds: float) -> float:
        if not self.url:
            return await drive_direct(
                self.producer,
                self.settings.topics.alerts,
                streams=self.streams,
                run=run,
                seconds=seconds,
                index=self.index,
            )
        return await drive(self.url, self.streams, run, seconds, self.index)

    async def step(self, rate: int, seconds: float) -> Figures:
        """Send `rate` alerts/s for `seconds`, wait for their signals (30 s at most), print."""
        run = Run(rate=rate)
        before = await consumer_totals(self.metrics_url)
        cpu_before = cpu_seconds(self.pids)
        duration = await self.send(run, seconds)
        done = time.monotonic()
        expected = len(run.sent_at) * len(self.lines)
        while run.received < expected and time.monotonic() - done < 30:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        drained = max(0.0, run.last_received - done)
        figures = report(run, duration, len(self.lines), drained)
        figures.cpu.update(cpu_per_alert(cpu_before, cpu_seconds(self.pids), len(run.sent_at)))
        report_stages(before, await consumer_totals(self.metrics_url))
        print(
            "          CPU ms per alert: "
            + ", ".join(f"{k} {v:.3f}" for k, v in figures.cpu.items())
        )
        await asyncio.sleep(1.0)
        return figures


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds of each process so far (kernel figures)."""
    out = {}
    for name, pid in pids.items():
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            out[name] = times.user + times.system
    return out


def cpu_per_alert(
    before: dict[str, float], after: dict[str, float], alerts: int
) -> dict[str, float]:
    """CPU milliseconds per alert of each process between two readings, and of all of them."""
    spent = {name: after[name] - before[name] for name in after if name in before}
    per = {name: seconds * 1000 / max(1, alerts) for name, seconds in spent.items()}
    return per | {"all": sum(per.values())}


def broker_pid(bootstrap: str) -> int | None:
    """The local Kafka broker's process (`itff kafka start`), when it runs on this machine."""
    port = bootstrap.rsplit(":", 1)[-1]
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if "kafka.Kafka" in cmdline:
            with contextlib.suppress(psutil.Error):
                if any(c.laddr.port == int(port) for c in proc.net_connections("tcp")):
                    return int(proc.pid)
    return None


@asynccontextmanager
async def running_stack(
    n_symbols: int,
    *,
    direct: bool,
    database_url: str | None,
    runtime: str,
    lines: Lines = LINES,
) -> AsyncIterator[Stack]:
    """Train and publish the champions, start `itff webhook` (unless `direct`) and `itff
    consumer` on fresh topics, warm up; on exit stop them and delete the topics."""
    bootstrap = os.environ.get("ITFF_KAFKA_BOOTSTRAP", "localhost:9092")
    root = Path(tempfile.mkdtemp(prefix="itff-bench-"))
    settings = bench_settings(root, bootstrap, database_url)
    symbols = ["SPX", "NDX", *(f"SYN{i}" for i in range(max(0, n_symbols - 2)))][:n_symbols]
    print(
        f"preparing {len(symbols)} symbols x {len(lines)} champion models "
        f"({', '.join(f'{t}:{m}' for t, m in lines)}) under {root} "
        f"(serving runtime: {runtime}) ...",
        flush=True,
    )
    streams = await prepare(settings, symbols, lines=lines)
    port, metrics_port = free_port(), free_port()
    env = webhook_env(settings, port) | {"ITFF_SERVING_RUNTIME": runtime}
    consumer_log = root / "consumer.log"
    procs = [] if direct else [start(["webhook"], env, root / "webhook.log")]
    consumer_args = ["consumer", "--metrics-port", str(metrics_port)]
    procs.append(start(consumer_args, env | {"ITFF_LOG_LEVEL": "INFO"}, consumer_log))
    print(f"consumer pid {procs[-1].pid}", flush=True)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, enable_idempotence=True, acks="all"
    )
    await producer.start()
    url = "" if direct else f"http://127.0.0.1:{port}/webhook/tradingview"
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    stack = Stack(settings, streams, url, metrics_url, producer, lines)
    stack.pids = {"consumer": procs[-1].pid, "bench (sender, reader)": os.getpid()}
    if not direct:
        stack.pids["receiver"] = procs[0].pid
    broker = broker_pid(settings.bootstrap)
    if broker is not None:
        stack.pids["broker"] = broker
    stop = asyncio.Event()
    reader = asyncio.create_task(read_signals(settings, stack.index, stop))
    try:
        if not direct:
            await wait_ready(f"http://127.0.0.1:{port}/health")
        await wait_consumer(consumer_log)
        await stack.send(Run(rate=20), 2.0)  # warm-up: connections, caches
        await asyncio.sleep(2.0)
        yield stack
    finally:
        stop.set()
        await reader
        await producer.stop()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        async with admin_client(settings.bootstrap) as admin:  # leave the shared broker clean
            await admin.delete_topics(list(settings.topics.all()))
        print(f"logs and database: {root}")


async def main(
    rates: list[int],
    seconds: float,
    n_symbols: int,
    *,
    direct: bool,
    database_url: str | None,
    runtime: str,
) -> list[Figures]:
    """Each rate in turn on one stack (a rate given twice is run twice)."""
    async with running_stack(
        n_symbols, direct=direct, database_url=database_url, runtime=runtime
    ) as stack:
        return [await stack.step(rate, seconds) for rate in rates]


def compare(rates: list[int], figures: dict[str, list[Figures]]) -> None:
    """The stores side by side, a line per step: signals received/expected, e2e latency ms,
    sustained or not."""
    print("\nstores side by side (signals, e2e ms p50/p99, sustained):")
    print(f"{'rate':>8}  " + "  ".join(f"{store:<40}" for store in figures))
    for step, rate in enumerate(rates):
        cells = "  ".join(
            f"{steps[step].short() if step < len(steps) else '-':<40}" for steps in figures.values()
        )
        print(f"{rate:>6}/s  {cells}")


@dataclass
class Goal:
    """One runtime's figures for the goal table."""

    low: Figures  # at the low rate (5/s)
    sustained: int = 0  # the highest ramp rate that was sustained
    failed: int = 0  # the first ramp rate that was not (0: none failed)
    at_sustained: Figures | None = None  # the figures of the highest sustained step


async def ramp(stack: Stack, options: argparse.Namespace) -> tuple[int, int, Figures | None]:
    """Rates growing by `--ramp-factor` from `--ramp-from` until one is not sustained in
    `--ramp-tries` attempts (a loaded machine's hiccup fails one step now and then): the last
    sustained rate, the first failed one (0 when `--ramp-max` was reached) and the figures of
    the last sustained step."""
    rate, sustained, last = options.ramp_from, 0, None
    while rate <= options.ramp_max:
        for _ in range(options.ramp_tries):
            figures = await stack.step(rate, options.seconds)
            if figures.sustained:
                break
        else:
            return sustained, rate, last
        sustained, last = rate, figures
        rate = max(rate + 1, round(rate * options.ramp_factor))
    return sustained, 0, last


async def goals(options: argparse.Namespace, database_url: str | None) -> dict[str, Goal]:
    """Per runtime (one run, one after the other on the same machine): the latency at the low
    rate for `--low-seconds`, then the sustained rate by `ramp`."""
    found: dict[str, Goal] = {}
    for runtime in options.runtimes.split(","):
        print(f"== runtime: {runtime}", flush=True)
        async with running_stack(
            options.symbols,
            direct=options.direct,
            database_url=database_url,
            runtime=runtime,
            lines=parse_lines(options.champions),
        ) as stack:
            goal = Goal(await stack.step(options.low_rate, options.low_seconds))
            goal.sustained, goal.failed, goal.at_sustained = await ramp(stack, options)
            found[runtime] = goal
    return found


def goal_table(found: dict[str, Goal], options: argparse.Namespace) -> None:
    """Issue 15's goals through the webhook, the runtimes side by side."""
    low = options.low_rate
    rows: list[tuple[str, str, list[str]]] = [
        (f"e2e p50 at {low}/s (ms)", "", [f"{g.low.e2e[0]:.1f}" for g in found.values()]),
        (f"e2e p95 at {low}/s (ms)", "", [f"{g.low.e2e[1]:.1f}" for g in found.values()]),
        (f"e2e p99 at {low}/s (ms)", "", [f"{g.low.e2e[2]:.1f}" for g in found.values()]),
        (
            f"receipt->signal p50 at {low}/s (ms)",
            "<= 6",
            [f"{g.low.emission[0]:.1f}" for g in found.values()],
        ),
        (
            f"receipt->signal p95 at {low}/s (ms)",
            "<= 10",
            [f"{g.low.emission[1]:.1f}" for g in found.values()],
        ),
        (
            "sustained alerts/s (first failed)",
            "",
            [f"{g.sustained} ({g.failed or '-'})" for g in found.values()],
        ),
    ]

    def cpu(figures: Figures | None, name: str) -> str:
        return f"{figures.cpu[name]:.3f}" if figures and name in figures.cpu else "-"

    rows += [
        (f"consumer CPU ms/alert at {low}/s", "", [cpu(g.low, "consumer") for g in found.values()]),
        (f"all processes CPU ms/alert at {low}/s", "", [cpu(g.low, "all") for g in found.values()]),
        (
            "consumer CPU ms/alert, highest sustained",
            "",
            [cpu(g.at_sustained, "consumer") for g in found.values()],
        ),
        (
            "all processes CPU ms/alert, same step",
            "",
            [cpu(g.at_sustained, "all") for g in found.values()],
        ),
    ]
    base = found.get("sklearn")
    if base is not None and base.sustained:
        ratios = [f"{g.sustained / base.sustained:.2f}x" for g in found.values()]
        rows.append(("sustained rate vs sklearn", ">= 3x", ratios))
        at = base.at_sustained
        if at is not None and at.cpu.get("all") and "consumer" in at.cpu:
            # on a CPU-bound machine, a consumer that cost nothing would raise the rate by
            # at most all / (all - consumer) over scikit-learn's
            ceiling = at.cpu["all"] / max(1e-9, at.cpu["all"] - at.cpu["consumer"])
            rows.append(("ceiling: a consumer costing 0 CPU", "", [f"{ceiling:.2f}x"]))
    setup = f"{options.symbols} symbols x champions {options.champions}"
    print(f"\ngoal table ({setup}, {'direct to Kafka' if options.direct else 'webhook'}):")
    print(f"{'':<36}" + "".join(f"{r:>12}" for r in found) + f"{'goal':>10}")
    for name, target, cells in rows:
        print(f"{name:<36}" + "".join(f"{c:>12}" for c in cells) + f"{target:>10}")


async def inprocess(options: argparse.Namespace) -> None:
    """The consumer's batch path alone: records -> stored bars and signals (no Kafka)."""
    root = Path(tempfile.mkdtemp(prefix="itff-bench-"))
    settings = bench_settings(root, "localhost:9")
    n_symbols, runtimes = options.symbols, options.runtimes.split(",")
    symbols = ["SPX", "NDX", *(f"SYN{i}" for i in range(max(0, n_symbols - 2)))][:n_symbols]
    streams = await prepare(settings, symbols, topics=False)
    engine = create_engine(settings.database_url)
    # as `consumers.runner`: the write's commits never checkpoint; a thread does it every second
    sync_engine = create_sync_sqlite_engine(settings.database_url, checkpoints="elsewhere")
    checkpointer = WalCheckpointer(settings.database_url).start()
    registry = registry_from_settings(settings)
    # the consumer's SQLite write (one hop, a synchronous connection in the inference thread)
    # and the aiosqlite one (any other database), alternated on the same batches' sizes
    services = {}
    for runtime in runtimes:
        models = PredictorModels(Predictor(registry, runtime=runtime))
        for write in options.writes.split(","):
            services[runtime, write] = InferenceService(
                session_factory=create_session_factory(engine),
                champion_specs=models.specs,
                predict=models.predict_windows,
                lookback=settings.lookback,
                sync_sessions=sessionmaker(sync_engine, expire_on_commit=False)
                if write == "sync"
                else None,
            )
    offset = 0

    def records(count: int) -> list[RecordRef]:
        nonlocal offset
        refs = []
        for i in range(count):
            body = streams[(offset + i) % len(streams)].next_body()
            alert = TradingViewMessage.model_validate(body).to_alert(source="replay")
            refs.append(RecordRef(alert.model_dump_json().encode(), "alerts", 0, offset + i))
        offset += count
        return refs

    for service in services.values():
        await service.process(records(20))  # warm-up: windows, models
    profiler = cProfile.Profile() if options.profile else None
    cpu: dict[tuple[int, str, str], float] = {}
    for size in [int(b) for b in options.batches.split(",")]:
        batches = {
            key: [records(size) for _ in range(max(1, options.alerts // size))] for key in services
        }
        profiled = (runtimes[0], "sync") if profiler else None
        for (runtime, write), ms in (await measure(services, batches, profiler, profiled)).items():
            cpu[size, runtime, write] = ms
    report_cpu(cpu, f"{n_symbols} symbols x {len(LINES)} champions")
    print_results(cpu)
    first_write = options.writes.split(",")[0]
    for runtime in runtimes:
        await infer_breakdown(services[runtime, first_write], records(GOAL_BATCH), runtime)
    if profiler and options.profile:
        profiler.dump_stats(options.profile)
        print(f"profile: {options.profile}")
    checkpointer.stop()
    await engine.dispose()
    sync_engine.dispose()
    print(f"database: {root}")


@dataclass
class _Tally:
    """One service's share of an interleaved in-process run."""

    wall: float = 0.0
    cpu: float = 0.0
    signals: int = 0
    stages: dict[str, float] = field(default_factory=dict)


async def measure(
    services: dict[tuple[str, str], InferenceService],
    batches: dict[tuple[str, str], list[list[RecordRef]]],
    profiler: cProfile.Profile | None,
    profiled: tuple[str, str] | None,
    block: int = 5,
) -> dict[tuple[str, str], float]:
    """Process each service's batches, the services taking turns every `block` batches (so a
    machine that slows down or speeds up during the run weighs on all of them alike), print their
    figures; the process CPU milliseconds per alert of each. Nothing else runs in this process
    but the SQLite checkpoint thread, so a turn's process CPU is that service's."""
    tallies = {key: _Tally() for key in services}
    rounds = len(next(iter(batches.values())))
    for start in range(0, rounds, block):
        for key, service in services.items():
            tally, before = tallies[key], stage_sums()
            if profiler and key == profiled:
                profiler.enable()
            started, cpu_started = time.perf_counter(), time.process_time()
            for batch in batches[key][start : start + block]:
                tally.signals += len((await service.process(batch)).signals)
            tally.wall += time.perf_counter() - started
            tally.cpu += time.process_time() - cpu_started
            if profiler and key == profiled:
                profiler.disable()
            for stage, after in stage_sums().items():
                tally.stages[stage] = tally.stages.get(stage, 0.0) + after - before[stage]
    figures = {}
    for (runtime, write), tally in tallies.items():
        runs = batches[runtime, write]
        size, count = len(runs[0]), len(runs[0]) * len(runs)
        stages = ", ".join(
            f"{stage} {seconds / len(runs) * 1000:.2f}"
            for stage, seconds in tally.stages.items()
            if stage in ("read", "infer", "write")
        )
        print(
            f"batch {size:>4} {runtime:>8} ({write:>9} write): {count:>6} alerts "
            f"{count / tally.wall:8.0f} alerts/s  {tally.wall / len(runs) * 1000:7.2f} ms/batch  "
            f"CPU {tally.cpu / count * 1000:6.3f} ms/alert  "
            f"signals {tally.signals}/{count * len(LINES)}  ms/batch: {stages}"
        )
        figures[runtime, write] = tally.cpu / count * 1000
    return figures


def report_cpu(cpu: dict[tuple[int, str, str], float], setup: str) -> None:
    print(f"process CPU ms per alert ({setup}), runtimes side by side:")
    for size, write in dict.fromkeys((size, write) for size, _, write in cpu):
        row = "  ".join(
            f"{r} {ms:6.3f}" for (s, r, w), ms in cpu.items() if (s, w) == (size, write)
        )
        print(f"  batch {size:>4} ({write:>9} write): {row}")
    for (size, runtime, write), ms in cpu.items():
        if size == GOAL_BATCH:
            verdict = "met" if ms <= GOAL_CPU_MS else f"not met ({ms / GOAL_CPU_MS:.1f}x the goal)"
            print(
                f"goal: <= {GOAL_CPU_MS} ms CPU per alert, batches of {size}: {runtime} "
                f"({write} write) {ms:.3f} ms, {verdict}"
            )


async def infer_breakdown(service: InferenceService, batch: list[RecordRef], runtime: str) -> None:
    """Where the infer stage of one batch goes (thread CPU, the steps timed in place)."""
    from bot.serving import predictor
    from consumers import inference

    result = BatchResult()
    groups = _group(service._decode(batch, result))  # noqa: SLF001 - the stages one by one
    await service._screen(groups, result)  # noqa: SLF001
    plan = await service._read(groups)  # noqa: SLF001
    spent: dict[str, int] = dict.fromkeys(BREAKDOWN, 0)
    patched = [
        (inference, "classify", "features"), (inference, "_apply", "features"),
        (inference._Slices, "features", "features"), (inference._GroupRows, "inputs", "inputs"),  # noqa: SLF001
        (predictor, "_check_windows", "predict: check"), (predictor, "_scores", "predict: model"),
        (predictor, "ood_distances", "predict: OOD"), (inference, "make_signal", "signals"),
        (service, "_predict", "predict call"),
    ]  # fmt: skip
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patched]
    for owner, name, step in patched:
        setattr(owner, name, _timed(getattr(owner, name), spent, step))
    repeat = 200
    try:
        started = time.thread_time_ns()
        for _ in range(repeat):
            service._infer_all(plan)  # noqa: SLF001
        total = time.thread_time_ns() - started
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
    parts = {step: ns / repeat / 1e3 for step, ns in spent.items()}
    inside = sum(us for step, us in parts.items() if step.startswith("predict:"))
    parts["predict: rest"] = parts["predict call"] - inside
    parts["other"] = total / repeat / 1e3 - sum(
        parts[step] for step in ("features", "inputs", "predict call", "signals")
    )
    alerts = sum(len(items) for items in plan.groups.values())
    print(
        f"infer stage of one batch ({runtime}, {alerts} alerts, {len(plan.groups)} symbols), "
        f"thread CPU us (steps timed in place, {total / repeat / 1e3:.0f} us in all): "
        + ", ".join(f"{step} {us:.0f}" for step, us in parts.items())
    )


BREAKDOWN = (
    "features", "inputs", "predict call", "predict: check", "predict: model", "predict: OOD",
    "signals",
)  # fmt: skip


def _timed(function: Any, spent: dict[str, int], step: str) -> Any:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time_ns()
        try:
            return function(*args, **kwargs)
        finally:
            spent[step] += time.thread_time_ns() - started

    return timed


def print_results(cpu: dict[tuple[int, str, str], float]) -> None:
    """The figures as lines `inprocess_apart` reads from each of its processes."""
    for (size, runtime, write), ms in cpu.items():
        print(f"{CPU_RESULT} {size} {runtime} {write} {ms:.6f}")


def inprocess_apart(options: argparse.Namespace) -> None:
    """`--inprocess --apart N`: each runtime in a process of its own on a fresh database, as a
    consumer runs one runtime, the runtimes alternating N rounds (so that the machine's drift
    weighs on each alike); the process CPU per alert of every run and the median per runtime.
    Taking turns inside one process instead makes each runtime pay for the other's footprint in
    the CPU caches (scikit-learn's forests): about 0.44 against 0.27 ms per alert, compiled."""
    runtimes = options.runtimes.split(",")
    found: dict[tuple[int, str, str], list[float]] = {}
    for round_ in range(options.apart):
        for runtime in runtimes:
            command = [
                sys.executable, __file__, "--inprocess", "--runtimes", runtime,
                "--batches", options.batches, "--alerts", str(options.alerts),
                "--writes", options.writes, "--symbols", str(options.symbols),
            ]  # fmt: skip
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            for line in output.splitlines():
                if line.startswith(CPU_RESULT):
                    _, size, name, write, ms = line.split()
                    found.setdefault((int(size), name, write), []).append(float(ms))
                elif line.startswith(("batch ", "goal")):
                    print(f"round {round_ + 1} {line}", flush=True)
    medians = {key: float(np.median(values)) for key, values in found.items()}
    for (size, runtime, write), values in found.items():
        runs = ", ".join(f"{v:.3f}" for v in values)
        print(f"batch {size:>4} {runtime:>8} ({write} write): CPU ms per alert {runs}")
    report_cpu(medians, f"{options.symbols} symbols x {len(LINES)} champions, median of runs")


def run(options: argparse.Namespace) -> None:
    if options.inprocess and options.apart:
        inprocess_apart(options)
    elif options.inprocess:
        asyncio.run(inprocess(options))
    elif options.goals:
        with store_url(options.store.split(",")[0]) as url:
            goal_table(asyncio.run(goals(options, url)), options)
    else:
        rates = [int(r) for r in options.rates.split(",")]
        figures: dict[str, list[Figures]] = {}
        for store in options.store.split(","):
            print(f"== store: {store}", flush=True)
            with store_url(store) as url:
                figures[store] = asyncio.run(
                    main(rates, options.seconds, options.symbols, direct=options.direct,
                         database_url=url, runtime=options.runtime)
                )  # fmt: skip
        compare(rates, figures)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,500,2000")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--symbols", type=int, default=4)
    parser.add_argument("--direct", action="store_true", help="publish to Kafka, no webhook")
    parser.add_argument("--inprocess", action="store_true", help="consumer batch path, no Kafka")
    parser.add_argument("--batches", default="1,10,100,500", help="--inprocess batch sizes")
    parser.add_argument("--alerts", type=int, default=2000, help="--inprocess alerts per size")
    parser.add_argument("--profile", type=Path, default=None, help="--inprocess cProfile file")
    parser.add_argument(
        "--store",
        default="sqlite",
        help="sqlite, postgresql (a local server, `itff postgres`) or both: sqlite,postgresql",
    )
    parser.add_argument(
        "--runtimes", default="compiled,sklearn", help="--inprocess and --goals runtimes"
    )
    parser.add_argument(
        "--runtime", default="compiled", help="ITFF_SERVING_RUNTIME of the processes"
    )
    parser.add_argument("--writes", default="sync,aiosqlite", help="--inprocess SQLite writes")
    parser.add_argument(
        "--apart",
        type=int,
        default=0,
        help="--inprocess: each runtime in its own process, alternating this many rounds",
    )
    parser.add_argument(
        "--champions",
        default=",".join(f"{t}:{m}" for t, m in LINES),
        help="--goals: each symbol's champions, target:model_type,...",
    )
    parser.add_argument("--goals", action="store_true", help="per runtime: low rate, then ramp")
    parser.add_argument("--low-rate", type=int, default=5, help="--goals latency rate")
    parser.add_argument("--low-seconds", type=float, default=20.0, help="--goals latency time")
    parser.add_argument("--ramp-from", type=int, default=25, help="--goals first ramp rate")
    parser.add_argument("--ramp-factor", type=float, default=1.4, help="--goals rate growth")
    parser.add_argument("--ramp-max", type=int, default=5000, help="--goals last ramp rate")
    parser.add_argument("--ramp-tries", type=int, default=2, help="--goals attempts per rate")
    options = parser.parse_args()
    try:
        run(options)
    except ItffError as exc:  # a broker or database that is not there: one line, what to do
        raise SystemExit(f"bench/e2e.py: {exc}") from None
