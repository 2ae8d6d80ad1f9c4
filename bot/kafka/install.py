"""What a local Apache Kafka broker is made of on disk: its jars, configuration and storage.

`fetch` resolves `org.apache.kafka:kafka_2.13` and its runtime dependencies with Maven into
`KAFKA_CACHE_DIR/<version>/libs` once. `prepare` writes a combined broker+controller (KRaft)
configuration and formats the storage the first time. The JVM records an AppCDS class archive on
its first clean exit; later starts map it, which nearly halves start-up on a small machine.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.contracts import ConfigError, Settings, TransientError

KAFKA_MAIN = "kafka.Kafka"
LOG4J_VERSION = "2.24.3"
FETCH_TIMEOUT_SECONDS = 900.0
JVM_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
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
    def pending_archive(self) -> Path:
        return self.data_dir / "kafka.jsa.partial"

    @property
    def cluster_id_file(self) -> Path:
        return self.data_dir / "cluster.id"


# --- jars -----------------------------------------------------------------------------------


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


def java_command(broker: LocalBroker, main: str, *args: str) -> list[str]:
    java = require_tool("java", "Java 17 or newer")
    return [
        java,
        f"-Xmx{broker.heap}",
        *JVM_FLAGS,
        *_class_archive_flags(broker, java, record=main == KAFKA_MAIN),
        f"-Dlog4j2.configurationFile={broker.log4j_file}",
        f"-Dkafka.logs.dir={broker.log_dir}",
        "-cp",
        f"{broker.libs}/*",
        main,
        *args,
    ]


def class_archive(broker: LocalBroker, java: str) -> Path:
    """The AppCDS archive of this Kafka version for this JVM (it nearly halves start-up)."""
    binary = Path(java).resolve()
    key = hashlib.sha256(f"{binary}:{binary.stat().st_mtime_ns}".encode()).hexdigest()[:12]
    return broker.libs.parent / f"kafka-{key}.jsa"


def _class_archive_flags(broker: LocalBroker, java: str, *, record: bool) -> list[str]:
    """Use the class archive when there is one; otherwise let a broker run record it at exit."""
    archive = class_archive(broker, java)
    if archive.is_file():
        return ["-Xshare:auto", f"-XX:SharedArchiveFile={archive}"]
    if not record:
        return []
    broker.pending_archive.unlink(missing_ok=True)
    return [f"-XX:ArchiveClassesAtExit={broker.pending_archive}", "-Xlog:cds=off"]


def adopt_class_archive(broker: LocalBroker) -> None:
    """After a clean exit, publish the archive the JVM recorded (copy, then atomic rename)."""
    pending = broker.pending_archive
    java = shutil.which("java")
    if not pending.is_file() or java is None:
        return
    archive = class_archive(broker, java)
    if not archive.is_file() and pending.stat().st_size > 0:
        staging = archive.with_name(f"{archive.name}.{os.getpid()}.tmp")
        shutil.copyfile(pending, staging)
        staging.replace(archive)
    pending.unlink(missing_ok=True)


def prepare(broker: LocalBroker) -> bool:
    """Write the configuration; format the storage the first time (True when it did)."""
    _write_config(broker)
    return _format_storage(broker)


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
    command = java_command(
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
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (22 characters).

    Never starting with `-`, which `kafka-storage format` would read as an option (about one id
    in 64): Kafka's own `Uuid.randomUuid` draws again in that case, and so does this."""
    while (
        cluster_id := base64.urlsafe_b64encode(os.urandom(16)).decode("ascii").rstrip("=")
    ).startswith("-"):
        pass
    return cluster_id


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
