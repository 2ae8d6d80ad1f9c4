"""Start, stop and watch a real single-node Apache Kafka broker (KRaft) on this machine.

`start` prepares the broker (see `bot.kafka.install`), launches the JVM in its own session and
waits until it answers a metadata request; it is idempotent and serialised by a file lock. `stop`
sends SIGTERM to the broker's process group and escalates to SIGKILL. Everything a broker owns
lives under `KAFKA_DATA_DIR`; its jars are shared under `KAFKA_CACHE_DIR`.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psutil

from bot.contracts import ConfigError, TransientError
from bot.kafka.install import (
    KAFKA_MAIN,
    LocalBroker,
    adopt_class_archive,
    fetch,
    is_fetched,
    java_command,
    prepare,
)

__all__ = [
    "BrokerStatus",
    "LocalBroker",
    "StartResult",
    "broker_answers",
    "broker_process",
    "fetch",
    "last_log_lines",
    "port_open",
    "start",
    "status",
    "stop",
]

READY_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 60.0
ERROR_MARKS = (" ERROR ", " FATAL ", "Exception: ", "Error: ", "Error occurred")
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
        if (ours := broker_process(broker)) is not None:  # launched earlier, not answering yet
            await _wait_ready(broker, ours.pid, ready_seconds)
            return StartResult(started=False, pid=ours.pid, seconds=time.monotonic() - began)
        if port_open(broker.port) or port_open(broker.controller_port):
            raise ConfigError(
                f"port {broker.port} or {broker.controller_port} is taken by something that is not "
                "a Kafka broker; free it or set ITFF_KAFKA_PORT / ITFF_KAFKA_CONTROLLER_PORT"
            )
        if not is_fetched(broker):
            await asyncio.to_thread(fetch, broker)
        formatted = await asyncio.to_thread(prepare, broker)
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
    command = java_command(broker, KAFKA_MAIN, str(broker.properties_file))
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
        if broker_process(broker) is None and not _alive(pid):
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


def _alive(pid: int) -> bool:
    """The process runs (not a zombie). While the JVM starts, its command line can be briefly
    another one (the `java` launcher may execute itself again): a broker whose command line does
    not match yet has not exited. A test session once failed all its Kafka tests that way, on a
    machine loaded by a second broker starting at the same moment."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def last_log_lines(broker: LocalBroker, count: int = 12) -> str:
    """The error lines of the broker's logs (or their last lines when none), for error messages."""
    lines: list[str] = []
    for path in (broker.console_log, broker.server_log):
        if path.is_file():
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()[-500:]
    errors = [line for line in lines if any(mark in line for mark in ERROR_MARKS)]
    shown = "\n".join((errors or lines)[-count:]) or "(no log output)"
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
        broker.pending_archive.unlink(missing_ok=True)  # cut short: may be incomplete
    else:
        adopt_class_archive(broker)
    broker.pid_file.unlink(missing_ok=True)
    return True


def _signal_group(pid: int, signum: signal.Signals) -> None:
    """Signal the broker's process group (the JVM leads it), or the JVM alone if that fails."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
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
