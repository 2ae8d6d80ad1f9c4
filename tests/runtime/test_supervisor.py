"""The supervisor with real short-lived child processes (`python -c ...`)."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from bot.runtime import RestartPolicy, ServiceSpec, Supervisor

FAST = RestartPolicy(max_restarts=2, initial_delay=0.01, max_delay=0.05, stop_timeout=5.0)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


async def wait_for_file(path: Path, bound: float = 30.0) -> str:
    return await asyncio.to_thread(wait_for_file_sync, path, bound)


async def until(predicate: Callable[[], bool], bound: float = 30.0) -> None:
    for _ in range(int(bound / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"condition not met within {bound} s")


def wait_for_file_sync(path: Path, bound: float = 30.0) -> str:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text():
            return path.read_text()
        time.sleep(0.02)
    pytest.fail(f"{path} was not written within {bound} s")


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def sleeper(ready: Path, on_term: str = "sys.exit(0)") -> list[str]:
    """A child that writes its pid to `ready`, then sleeps until SIGTERM runs `on_term`."""
    return python(f"""
        import os, signal, sys, time
        def handler(*_):
            {on_term}
        signal.signal(signal.SIGTERM, handler)
        open({str(ready)!r}, "w").write(str(os.getpid()))
        time.sleep(120)
    """)


async def test_a_crashing_service_is_restarted_then_given_up(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    crash = python(f"open({str(starts)!r}, 'a').write('x'); raise SystemExit(3)")
    supervisor = Supervisor([ServiceSpec("crasher", crash)], FAST, output=io.StringIO())

    code = await supervisor.run()

    assert code == 1  # every service given up
    assert starts.read_text() == "xxx"  # the first start and two restarts
    assert supervisor.restarts == {"crasher": 2}
    assert supervisor.given_up == {"crasher"}


async def test_a_crash_does_not_disturb_the_other_services(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    supervisor = Supervisor(
        [ServiceSpec("crasher", python("raise SystemExit(1)")), ServiceSpec("ok", sleeper(ready))],
        FAST,
        output=io.StringIO(),
    )
    task = asyncio.create_task(supervisor.run())
    pid = int(await wait_for_file(ready))
    await until(lambda: "crasher" in supervisor.given_up)
    assert supervisor.pids() == {"ok": pid}
    supervisor.stop()
    assert await task == 0
    assert gone(pid)


async def test_stop_sends_sigterm_and_waits_for_a_clean_exit(tmp_path: Path) -> None:
    ready, stopped = tmp_path / "ready", tmp_path / "stopped"
    on_term = f"open({str(stopped)!r}, 'w').write('clean'); sys.exit(0)"
    supervisor = Supervisor([ServiceSpec("svc", sleeper(ready, on_term))], FAST, io.StringIO())
    task = asyncio.create_task(supervisor.run())
    pid = int(await wait_for_file(ready))

    supervisor.stop()

    assert await task == 0
    assert stopped.read_text() == "clean"
    assert gone(pid)
    assert supervisor.restarts == {"svc": 0}


async def test_a_child_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    policy = RestartPolicy(stop_timeout=0.5)
    supervisor = Supervisor(
        [ServiceSpec("stubborn", sleeper(ready, "pass"))], policy, io.StringIO()
    )
    task = asyncio.create_task(supervisor.run())
    pid = int(await wait_for_file(ready))

    supervisor.stop()

    assert await task == 0
    assert gone(pid)


async def test_child_output_is_prefixed_with_the_service_name() -> None:
    output = io.StringIO()
    once = RestartPolicy(max_restarts=0)
    supervisor = Supervisor(
        [ServiceSpec("web", python("print('hello'); print('world')"))], once, output
    )
    await supervisor.run()
    assert output.getvalue().splitlines() == ["web | hello", "web | world"]


async def test_environment_reaches_the_child(tmp_path: Path) -> None:
    output = io.StringIO()
    spec = ServiceSpec("env", python("import os; print(os.environ['ITFF_X'])"), env={"ITFF_X": "7"})
    await Supervisor([spec], RestartPolicy(max_restarts=0), output).run()
    assert output.getvalue().strip() == "env | 7"


def test_backoff_doubles_up_to_the_limit() -> None:
    policy = RestartPolicy(initial_delay=1.0, max_delay=5.0)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


SUPERVISED = """
import asyncio, sys
from bot.runtime.supervisor import RestartPolicy, ServiceSpec, Supervisor, supervise
child = [sys.executable, "-c", sys.argv[1]]
sup = Supervisor([ServiceSpec("svc", child)], RestartPolicy(stop_timeout=10))
sys.exit(asyncio.run(supervise(sup)))
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_supervisor_stops_its_children(tmp_path: Path, signum: int) -> None:
    ready, stopped = tmp_path / "ready", tmp_path / "stopped"
    child = sleeper(ready, f"open({str(stopped)!r}, 'w').write('clean'); sys.exit(0)")[2]
    proc = subprocess.Popen([sys.executable, "-c", SUPERVISED, child], cwd=Path.cwd())
    try:
        pid = int(wait_for_file_sync(ready))
        os.kill(proc.pid, signum)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert stopped.read_text() == "clean"
    assert gone(pid)
