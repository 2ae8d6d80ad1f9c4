"""Run services as child processes: restart a crashed child with backoff, stop them all cleanly.

Each child gets its own process group, so a Ctrl-C in the terminal reaches only the supervisor,
which then stops the children in order: SIGTERM to the group, a grace period, SIGKILL. On Linux a
child also receives SIGTERM if the supervisor itself dies, so no service outlives `itff up`. Every
line a child prints is echoed with the service's name in front.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sys
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TextIO

from bot.runtime.observability import get_logger

log = get_logger(__name__)

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One supervised service: a name, the argv that runs it and, for the user, its URL."""

    name: str
    argv: Sequence[str]
    url: str | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """Backoff doubles from `initial_delay` up to `max_delay`.

    A child that ran `stable_after` seconds counts as healthy again; after `max_restarts`
    consecutive crashes its service is given up.
    """

    max_restarts: int = 5
    initial_delay: float = 1.0
    max_delay: float = 30.0
    stable_after: float = 60.0
    stop_timeout: float = 15.0

    def delay(self, failures: int) -> float:
        return float(min(self.max_delay, self.initial_delay * 2 ** max(0, failures - 1)))


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """Keeps a set of services running until `stop()`; see the module docstring."""

    def __init__(
        self,
        services: Sequence[ServiceSpec],
        policy: RestartPolicy | None = None,
        output: TextIO | None = None,
    ) -> None:
        self.services = tuple(services)
        self.policy = policy or RestartPolicy()
        self.output = output or sys.stderr
        self.restarts: dict[str, int] = {spec.name: 0 for spec in self.services}
        self.given_up: set[str] = set()
        self._running: dict[str, asyncio.subprocess.Process] = {}
        self._stopping = asyncio.Event()
        self._width = max((len(spec.name) for spec in self.services), default=0)

    def pids(self) -> dict[str, int]:
        """Pid of each child that is running now."""
        return {name: proc.pid for name, proc in self._running.items() if proc.returncode is None}

    def stop(self) -> None:
        """Ask every service to stop; `run()` returns once they have."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> int:
        """Supervise until `stop()` or until every service was given up. 0 = stopped on request."""
        tasks = [asyncio.create_task(self._keep_running(spec)) for spec in self.services]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.gather(*(self._terminate(p) for p in list(self._running.values())))
        return 0 if self.stopping or not self.services else 1

    async def _keep_running(self, spec: ServiceSpec) -> None:
        failures = 0
        while not self.stopping:
            began = time.monotonic()
            code = await self._run_once(spec)
            if self.stopping:
                return
            if time.monotonic() - began >= self.policy.stable_after:
                failures = 0
            failures += 1
            if failures > self.policy.max_restarts:
                log.error("service given up", service=spec.name, exit_code=code, crashes=failures)
                self.given_up.add(spec.name)
                return
            delay = self.policy.delay(failures)
            log.warning(
                "service exited; restarting", service=spec.name, exit_code=code, delay=delay
            )
            if await self._stop_requested_within(delay):
                return
            self.restarts[spec.name] += 1

    async def _run_once(self, spec: ServiceSpec) -> int | None:
        try:
            proc = await self._spawn(spec)
        except OSError as exc:
            log.error("service could not be started", service=spec.name, error=str(exc))
            return None
        self._running[spec.name] = proc
        pump = asyncio.create_task(self._pump(spec.name, proc))
        try:
            stop_wait = asyncio.create_task(self._stopping.wait())
            exit_wait = asyncio.create_task(proc.wait())
            await asyncio.wait({stop_wait, exit_wait}, return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            if self.stopping:
                await self._terminate(proc)
                log.info("service stopped", service=spec.name, exit_code=proc.returncode)
            return await exit_wait
        finally:
            _signal_group(proc.pid, signal.SIGTERM)  # leftovers of its group hold the pipe open
            try:
                await asyncio.wait_for(pump, self.policy.stop_timeout)
            except TimeoutError:
                _signal_group(proc.pid, signal.SIGKILL)
            self._running.pop(spec.name, None)

    async def _spawn(self, spec: ServiceSpec) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            *spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **spec.env},
            process_group=0,
            preexec_fn=_die_with_parent,  # only a prctl call: safe between fork and exec
        )
        log.info("service started", service=spec.name, pid=proc.pid)
        return proc

    async def _pump(self, name: str, proc: asyncio.subprocess.Process) -> None:
        if proc.stdout is None:
            return
        prefix = f"{name:<{self._width}} | "
        while line := await proc.stdout.readline():
            self.output.write(prefix + line.decode("utf-8", errors="replace").rstrip("\n") + "\n")
            self.output.flush()

    async def _terminate(self, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM the child's process group, then SIGKILL after the policy's stop timeout."""
        if proc.returncode is not None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.policy.stop_timeout)
        except TimeoutError:
            log.warning("service ignored SIGTERM; killing it", pid=proc.pid)
            _signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def _stop_requested_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


async def supervise(supervisor: Supervisor) -> int:
    """`supervisor.run()` with SIGINT/SIGTERM asking it to stop (a second signal kills at once)."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        if supervisor.stopping:
            for pid in supervisor.pids().values():
                _signal_group(pid, signal.SIGKILL)
            return
        log.info("stopping services", signal=signum.name)
        supervisor.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await supervisor.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
