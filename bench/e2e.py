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
the process CPU time per alert (the goal: at most 0.3 ms at 4 symbols x 3 champions, batches of 10).
"""

from __future__ import annotations

import argparse
import asyncio
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import pandas as pd
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import sessionmaker

from bot import postgres
from bot.artifacts import registry_from_settings
from bot.contracts import Alert, Settings, Signal, TradingViewMessage, load_settings
from bot.kafka import admin_client, ensure_topics
from bot.serving import Predictor
from consumers.deadletters import RecordRef
from consumers.served_models import PredictorModels
from consumers.service import InferenceService
from storage.db import create_engine, create_session_factory, create_sync_sqlite_engine
from storage.migrate import upgrade_async

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.consumer import fit_bundle, sample_bars, seed_bars
from tests.support.env import child_env

ITFF = Path(sys.executable).with_name("itff")
LINES = (("direction", "logreg"), ("return", "ridge"), ("direction", "ridge"))
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


async def prepare(settings: Settings, symbols: list[str], *, topics: bool = True) -> list[Stream]:
    if topics:
        await ensure_topics(settings)
    await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url)
    sessions = create_session_factory(engine)
    registry = registry_from_settings(settings)
    streams = []
    for i, symbol in enumerate(symbols):
        bars = sample_bars("SPX" if i % 2 == 0 else "NDX")
        for target, model_type in LINES:
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


def report(run: Run, duration: float, models_per_alert: int, drained: float) -> str:
    """Prints the rate's figures; returns them in short for the side-by-side store table."""
    expected = len(run.sent_at) * models_per_alert
    lat = np.array(run.latencies) * 1000
    emission = np.array(run.emission)
    if lat.size == 0:
        print(f"{run.rate:>6}/s  no signals received ({run.errors} errors)")
        return f"no signals ({run.errors} errors)"
    tenth = max(1, lat.size // 10)
    first, last = np.median(lat[:tenth]), np.median(lat[-tenth:])
    sustained = run.received == expected and drained < 2.0 and last < 3 * first + 50
    print(
        f"{run.rate:>6}/s  sent {len(run.sent_at):>6} in {duration:5.1f}s  "
        f"signals {run.received}/{expected}  "
        f"e2e ms p50 {np.percentile(lat, 50):7.1f} p95 {np.percentile(lat, 95):7.1f} "
        f"p99 {np.percentile(lat, 99):7.1f}  "
        f"(receipt->emission p50 {np.percentile(emission, 50):6.1f} "
        f"p95 {np.percentile(emission, 95):6.1f})  "
        f"first/last decile p50 {first:6.1f}/{last:6.1f}  drain {drained:4.1f}s  "
        f"errors {run.errors}  {'sustained' if sustained else 'BACKLOG'}"
    )
    report_trace(run)
    return (
        f"{run.received}/{expected} p50 {np.percentile(lat, 50):6.1f} "
        f"p99 {np.percentile(lat, 99):7.1f} {'ok' if sustained else 'BACKLOG'}"
    )


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


async def main(
    rates: list[int],
    seconds: float,
    n_symbols: int,
    *,
    direct: bool,
    database_url: str | None,
    runtime: str,
) -> dict[int, str]:
    bootstrap = os.environ.get("ITFF_KAFKA_BOOTSTRAP", "localhost:9092")
    root = Path(tempfile.mkdtemp(prefix="itff-bench-"))
    settings = bench_settings(root, bootstrap, database_url)
    figures: dict[int, str] = {}
    symbols = ["SPX", "NDX", *(f"SYN{i}" for i in range(max(0, n_symbols - 2)))][:n_symbols]
    print(
        f"preparing {len(symbols)} symbols x {len(LINES)} champion models under {root} "
        f"(serving runtime: {runtime}) ..."
    )
    streams = await prepare(settings, symbols)
    port = free_port()
    env = webhook_env(settings, port) | {"ITFF_SERVING_RUNTIME": runtime}
    consumer_log = root / "consumer.log"
    procs = [] if direct else [start(["webhook"], env, root / "webhook.log")]
    metrics_port = free_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    procs.append(
        start(
            ["consumer", "--metrics-port", str(metrics_port)],
            env | {"ITFF_LOG_LEVEL": "INFO"},
            consumer_log,
        )
    )
    print(f"consumer pid {procs[-1].pid}", flush=True)
    index: dict[str, Run] = {}
    stop = asyncio.Event()
    reader = asyncio.create_task(read_signals(settings, index, stop))
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, enable_idempotence=True, acks="all"
    )
    await producer.start()
    url = f"http://127.0.0.1:{port}/webhook/tradingview"

    async def send(run: Run, span: float) -> float:
        if direct:
            return await drive_direct(
                producer,
                settings.topics.alerts,
                streams=streams,
                run=run,
                seconds=span,
                index=index,
            )
        return await drive(url, streams, run, span, index)

    try:
        if not direct:
            await wait_ready(f"http://127.0.0.1:{port}/health")
        await wait_consumer(consumer_log)
        await send(Run(rate=20), 2.0)  # warm-up: connections, caches
        await asyncio.sleep(2.0)
        for rate in rates:
            run = Run(rate=rate)
            before = await consumer_totals(metrics_url)
            duration = await send(run, seconds)
            done = time.monotonic()
            expected = len(run.sent_at) * len(LINES)
            while run.received < expected and time.monotonic() - done < 30:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            drained = max(0.0, run.last_received - done)
            figures[rate] = report(run, duration, len(LINES), drained)
            report_stages(before, await consumer_totals(metrics_url))
            await asyncio.sleep(1.0)
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
    return figures


def compare(rates: list[int], figures: dict[str, dict[int, str]]) -> None:
    """The stores side by side: signals received/expected, e2e latency ms, sustained or not."""
    print("\nstores side by side (signals, e2e ms p50/p99, sustained):")
    print(f"{'rate':>8}  " + "  ".join(f"{store:<40}" for store in figures))
    for rate in rates:
        cells = "  ".join(f"{by_rate.get(rate, '-'):<40}" for by_rate in figures.values())
        print(f"{rate:>6}/s  {cells}")


async def inprocess(options: argparse.Namespace) -> None:
    """The consumer's batch path alone: records -> stored bars and signals (no Kafka)."""
    root = Path(tempfile.mkdtemp(prefix="itff-bench-"))
    settings = bench_settings(root, "localhost:9")
    n_symbols, runtimes = options.symbols, options.runtimes.split(",")
    symbols = ["SPX", "NDX", *(f"SYN{i}" for i in range(max(0, n_symbols - 2)))][:n_symbols]
    streams = await prepare(settings, symbols, topics=False)
    engine = create_engine(settings.database_url)
    sync_engine = create_sync_sqlite_engine(settings.database_url)
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
        for (runtime, write), service in services.items():
            batches = [records(size) for _ in range(max(1, options.alerts // size))]
            profiling = profiler if write == "sync" and runtime == runtimes[0] else None
            cpu[size, runtime, write] = await measure(service, batches, profiling, runtime, write)
    report_cpu(cpu, f"{n_symbols} symbols x {len(LINES)} champions")
    if profiler and options.profile:
        profiler.dump_stats(options.profile)
        print(f"profile: {options.profile}")
    await engine.dispose()
    sync_engine.dispose()
    print(f"database: {root}")


async def measure(
    service: InferenceService,
    batches: list[list[RecordRef]],
    profiler: cProfile.Profile | None,
    runtime: str,
    write: str,
) -> float:
    """Process the batches, print their figures; the process CPU milliseconds per alert."""
    signals, stages_before = 0, stage_sums()
    if profiler:
        profiler.enable()
    started, cpu_started = time.perf_counter(), time.process_time()
    for batch in batches:
        signals += len((await service.process(batch)).signals)
    elapsed, cpu_used = time.perf_counter() - started, time.process_time() - cpu_started
    if profiler:
        profiler.disable()
    size = len(batches[0])
    count = size * len(batches)
    stages = ", ".join(
        f"{stage} {(after - stages_before[stage]) / len(batches) * 1000:.2f}"
        for stage, after in stage_sums().items()
        if stage in ("read", "infer", "write")
    )
    print(
        f"batch {size:>4} {runtime:>8} ({write:>9} write): {count:>6} alerts "
        f"{count / elapsed:8.0f} alerts/s  {elapsed / len(batches) * 1000:7.2f} ms/batch  "
        f"CPU {cpu_used / count * 1000:6.3f} ms/alert  signals {signals}/{count * len(LINES)}  "
        f"ms/batch: {stages}"
    )
    return cpu_used / count * 1000


def report_cpu(cpu: dict[tuple[int, str, str], float], setup: str) -> None:
    print(f"process CPU ms per alert ({setup}), runtimes side by side:")
    for size, write in dict.fromkeys((size, write) for size, _, write in cpu):
        row = "  ".join(
            f"{r} {ms:6.3f}" for (s, r, w), ms in cpu.items() if (s, w) == (size, write)
        )
        print(f"  batch {size:>4} ({write:>9} write): {row}")


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
    parser.add_argument("--runtimes", default="compiled,sklearn", help="--inprocess runtimes")
    parser.add_argument(
        "--runtime", default="compiled", help="ITFF_SERVING_RUNTIME of the processes"
    )
    parser.add_argument("--writes", default="sync,aiosqlite", help="--inprocess SQLite writes")
    options = parser.parse_args()
    if options.inprocess:
        asyncio.run(inprocess(options))
    else:
        rates = [int(r) for r in options.rates.split(",")]
        figures: dict[str, dict[int, str]] = {}
        for store in options.store.split(","):
            print(f"== store: {store}", flush=True)
            with store_url(store) as url:
                figures[store] = asyncio.run(
                    main(rates, options.seconds, options.symbols, direct=options.direct,
                         database_url=url, runtime=options.runtime)
                )  # fmt: skip
        compare(rates, figures)
