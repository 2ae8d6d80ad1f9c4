"""A real single-node Apache Kafka (KRaft, broker + controller in one JVM) run from Maven jars.

`fetch` resolves `org.apache.kafka:kafka_2.13` and its runtime dependencies into
`KAFKA_CACHE_DIR/<version>/libs` once; `start` writes the configuration, formats the storage once,
launches the JVM in its own session and waits until the broker answers a metadata request; `stop`
sends SIGTERM and escalates to SIGKILL. Everything a broker owns lives under `KAFKA_DATA_DIR`.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psutil

from bot.errors import ConfigError, TransientError
from bot.settings import Settings

KAFKA_MAIN = "kafka.Kafka"
LOG4J_VERSION = "2.24.3"
READY_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 30.0
FETCH_TIMEOUT_SECONDS = 900.0
JVM_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
# Launches the JVM in a new session and exits, so the broker is nobody's child: it survives the
# command that started it and never lingers as a zombie of a long-lived parent.
_LAUNCHER = (
    "import subprocess, sys\n"
    "log = open(sys.argv[1], 'ab')\n"
    "p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=log,"
    " start_new_session=True)\n"
    "print(p.pid)\n"
)


@dataclass(frozen=True, slots=True)
class LocalBroker:
    """Where one local broker keeps its jars, configuration, data and logs, and its ports."""

    version: str
    cache_dir: Path
    data_dir: Path
    port: int
    controller_port: int
    heap: str = "512m"

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalBroker:
        return cls(
            version=settings.kafka_version,
            cache_dir=settings.kafka_cache_dir.absolute(),
            data_dir=settings.kafka_data_dir.absolute(),
            port=settings.kafka_port,
            controller_port=settings.kafka_controller_port,
            heap=settings.kafka_heap,
        )

    @property
    def bootstrap(self) -> str:
        return f"localhost:{self.port}"

    @property
    def libs(self) -> Path:
        return self.cache_dir / self.version / "libs"

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "kraft"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def server_log(self) -> Path:
        return self.log_dir / "server.log"

    @property
    def console_log(self) -> Path:
        return self.log_dir / "console.log"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log4j_file(self) -> Path:
        return self.data_dir / "log4j2.properties"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "kafka.pid"

    @property
    def cluster_id_file(self) -> Path:
        return self.data_dir / "cluster.id"


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    running: bool
    port: int
    pid: int | None = None
    uptime_seconds: float | None = None
    rss_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class StartResult:
    started: bool
    pid: int | None
    seconds: float
    formatted: bool = False


# --- fetch -----------------------------------------------------------------------------------


def _pom(version: str) -> str:
    deps = (
        ("org.apache.kafka", "kafka_2.13", version),
        # Kafka 4.x logs through SLF4J 1.7; this is the Log4j 2 binding its own distribution ships.
        ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
        ("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
    )
    body = "".join(
        f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>\n"
        for g, a, v in deps
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "<modelVersion>4.0.0</modelVersion>\n"
        "<groupId>itff.local</groupId><artifactId>kafka-runtime</artifactId>"
        "<version>1</version><packaging>pom</packaging>\n"
        f"<dependencies>\n{body}</dependencies>\n</project>\n"
    )


def require_tool(name: str, what: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ConfigError(
            f"'{name}' was not found on PATH; the local Kafka broker needs {what} "
            "(Debian: apt-get install openjdk-17-jre-headless maven), "
            "or set ITFF_KAFKA_BOOTSTRAP to use an existing cluster"
        )
    return path


def is_fetched(broker: LocalBroker) -> bool:
    return (broker.libs / ".complete").is_file()


def fetch(broker: LocalBroker) -> bool:
    """Resolve the broker's jars with Maven once. Returns False when they were already there."""
    if is_fetched(broker):
        return False
    mvn = require_tool("mvn", "Maven to download the Apache Kafka jars")
    require_tool("java", "Java 17 or newer")
    work = broker.libs.parent
    work.mkdir(parents=True, exist_ok=True)
    with _file_lock(work / ".fetch.lock"):
        if is_fetched(broker):
            return False
        (work / "pom.xml").write_text(_pom(broker.version), encoding="utf-8")
        staging = work / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        _run_maven(mvn, work, staging, broker.version)
        shutil.rmtree(broker.libs, ignore_errors=True)
        staging.rename(broker.libs)
        (broker.libs / ".complete").write_text(broker.version, encoding="utf-8")
    return True


def _run_maven(mvn: str, work: Path, staging: Path, version: str) -> None:
    command = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(work / "pom.xml"),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            command, capture_output=True, text=True, timeout=FETCH_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise TransientError(
            f"Maven did not finish resolving Kafka {version} within {FETCH_TIMEOUT_SECONDS:.0f} s; "
            "check the network to Maven Central and retry 'itff kafka fetch'"
        ) from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise TransientError(
            f"Maven could not resolve org.apache.kafka:kafka_2.13:{version} "
            f"(exit {done.returncode}); check ITFF_KAFKA_VERSION and the network, "
            f"then retry 'itff kafka fetch':\n{tail}"
        )


# --- configuration ---------------------------------------------------------------------------


def server_properties(broker: LocalBroker) -> str:
    port, controller = broker.port, broker.controller_port
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@localhost:{controller}",
        "listeners": f"PLAINTEXT://localhost:{port},CONTROLLER://localhost:{controller}",
        "advertised.listeners": f"PLAINTEXT://localhost:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(broker.storage_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "delete.topic.enable": "true",
        "log.retention.hours": "168",
        "log.segment.bytes": str(64 * 1024 * 1024),
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def log4j_properties(broker: LocalBroker) -> str:
    return (
        "status = warn\n"
        "appender.file.type = RollingFile\n"
        "appender.file.name = file\n"
        f"appender.file.fileName = {broker.server_log}\n"
        f"appender.file.filePattern = {broker.server_log}.%i\n"
        "appender.file.layout.type = PatternLayout\n"
        "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
        "appender.file.policies.type = Policies\n"
        "appender.file.policies.size.type = SizeBasedTriggeringPolicy\n"
        "appender.file.policies.size.size = 20MB\n"
        "appender.file.strategy.type = DefaultRolloverStrategy\n"
        "appender.file.strategy.max = 3\n"
        "rootLogger.level = INFO\n"
        "rootLogger.appenderRef.file.ref = file\n"
        "logger.kafka.name = org.apache.kafka\n"
        "logger.kafka.level = INFO\n"
    )


def _java(broker: LocalBroker, main: str, *args: str) -> list[str]:
    return [
        require_tool("java", "Java 17 or newer"),
        f"-Xmx{broker.heap}",
        *JVM_FLAGS,
        f"-Dlog4j2.configurationFile={broker.log4j_file}",
        f"-Dkafka.logs.dir={broker.log_dir}",
        "-cp",
        f"{broker.libs}/*",
        main,
        *args,
    ]


def _write_config(broker: LocalBroker) -> None:
    broker.log_dir.mkdir(parents=True, exist_ok=True)
    broker.properties_file.write_text(server_properties(broker), encoding="utf-8")
    broker.log4j_file.write_text(log4j_properties(broker), encoding="utf-8")


def _format_storage(broker: LocalBroker) -> bool:
    """Format the KRaft storage the first time; the cluster id is kept in `cluster.id`."""
    if (broker.storage_dir / "meta.properties").is_file():
        return False
    if not broker.cluster_id_file.is_file():
        broker.cluster_id_file.write_text(_random_cluster_id(), encoding="utf-8")
    cluster_id = broker.cluster_id_file.read_text(encoding="utf-8").strip()
    command = _java(
        broker, "kafka.tools.StorageTool", "format", "--ignore-formatted",
        "-t", cluster_id, "-c", str(broker.properties_file),
    )  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise ConfigError(
            f"formatting the Kafka storage in {broker.storage_dir} failed: "
            f"{(done.stdout + done.stderr).strip()[-800:]}; "
            f"delete {broker.data_dir} to start afresh"
        )
    return True


def _random_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (22 characters)."""
    import base64

    return base64.urlsafe_b64encode(os.urandom(16)).decode("ascii").rstrip("=")


# --- process ---------------------------------------------------------------------------------


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def broker_process(broker: LocalBroker) -> psutil.Process | None:
    """The live JVM recorded in the pid file, if it is still our broker (pids get reused)."""
    try:
        pid = int(broker.pid_file.read_text(encoding="utf-8").strip())
        process = psutil.Process(pid)
        cmdline = process.cmdline()
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
    except (OSError, ValueError, psutil.Error):
        return None
    if KAFKA_MAIN in cmdline and str(broker.properties_file) in cmdline:
        return process
    return None


def port_open(port: int, host: str = "localhost") -> bool:
    with suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


async def broker_answers(bootstrap: str, wait_seconds: float = 5.0) -> bool:
    """True when a Kafka broker at `bootstrap` answers a metadata request."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="itff-probe",
        request_timeout_ms=int(wait_seconds * 1000),
    )
    try:
        async with asyncio.timeout(wait_seconds):
            await admin.start()
            await admin.describe_cluster()
    except Exception:
        return False
    finally:
        with suppress(Exception):
            await admin.close()
    return True


async def start(
    broker: LocalBroker, *, ready_seconds: float = READY_TIMEOUT_SECONDS
) -> StartResult:
    """Start the broker unless one already answers on its port; wait until it is ready."""
    began = time.monotonic()
    broker.data_dir.mkdir(parents=True, exist_ok=True)
    lock = broker.data_dir / ".start.lock"
    async with _async_lock(lock):
        if port_open(broker.port) and await broker_answers(broker.bootstrap, wait_seconds=2.0):
            process = broker_process(broker)
            pid = process.pid if process else None
            return StartResult(started=False, pid=pid, seconds=time.monotonic() - began)
        if port_open(broker.port) or port_open(broker.controller_port):
            raise ConfigError(
                f"port {broker.port} or {broker.controller_port} is taken by something that is not "
                "a Kafka broker; free it or set ITFF_KAFKA_PORT / ITFF_KAFKA_CONTROLLER_PORT"
            )
        if not is_fetched(broker):
            await asyncio.to_thread(fetch, broker)
        _write_config(broker)
        formatted = await asyncio.to_thread(_format_storage, broker)
        pid = _launch(broker)
        await _wait_ready(broker, pid, ready_seconds)
    return StartResult(started=True, pid=pid, seconds=time.monotonic() - began, formatted=formatted)


@asynccontextmanager
async def _async_lock(path: Path) -> AsyncIterator[None]:
    """An exclusive `flock` taken off the event loop, so concurrent `start` calls don't race."""
    handle = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing releases the lock


def _launch(broker: LocalBroker) -> int:
    command = _java(broker, KAFKA_MAIN, str(broker.properties_file))
    done = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [sys.executable, "-c", _LAUNCHER, str(broker.console_log), *command],
        capture_output=True,
        text=True,
        check=True,
        cwd=broker.data_dir,
    )
    pid = int(done.stdout.strip())
    broker.pid_file.write_text(f"{pid}\n", encoding="utf-8")
    return pid


async def _wait_ready(broker: LocalBroker, pid: int, ready_seconds: float) -> None:
    deadline = time.monotonic() + ready_seconds
    while time.monotonic() < deadline:
        if broker_process(broker) is None:
            raise TransientError(
                f"the Kafka broker (pid {pid}) exited during start-up:\n{last_log_lines(broker)}"
            )
        if port_open(broker.port) and await broker_answers(broker.bootstrap, wait_seconds=3.0):
            return
        await asyncio.sleep(0.25)
    stop(broker)
    raise TransientError(
        f"the Kafka broker did not answer on {broker.bootstrap} within {ready_seconds:.0f} s "
        f"and was stopped:\n{last_log_lines(broker)}"
    )


def last_log_lines(broker: LocalBroker, count: int = 20) -> str:
    lines: list[str] = []
    for path in (broker.console_log, broker.server_log):
        if path.is_file():
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()[-count:]
    shown = "\n".join(lines[-count:]) or "(no log output)"
    return f"{shown}\n(full logs: {broker.log_dir})"


def stop(broker: LocalBroker, *, timeout: float = STOP_TIMEOUT_SECONDS) -> bool:
    """SIGTERM the broker's process group, SIGKILL after `timeout`. False if it was not running."""
    process = broker_process(broker)
    if process is None:
        broker.pid_file.unlink(missing_ok=True)
        return False
    _signal_group(process.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs([process], timeout=timeout)
    if alive:
        _signal_group(process.pid, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5)
    broker.pid_file.unlink(missing_ok=True)
    return True


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
    with suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def status(broker: LocalBroker) -> BrokerStatus:
    process = broker_process(broker)
    if process is None:
        return BrokerStatus(running=False, port=broker.port)
    with process.oneshot():
        uptime = time.time() - process.create_time()
        rss = process.memory_info().rss
    return BrokerStatus(
        running=True, port=broker.port, pid=process.pid, uptime_seconds=uptime, rss_bytes=rss
    )
