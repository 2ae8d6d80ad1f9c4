"""`producers.server.serve`, the runner of `itff webhook`: uvloop, frozen start-up objects, no
access log, graceful stop on SIGTERM. Run in a child process: it changes process-wide state."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

CHILD = """
import asyncio, gc, logging, sys
from aiohttp import web
from producers.server import serve

logging.basicConfig(level=logging.INFO, stream=sys.stderr)

async def state(_request):
    return web.json_response({
        "loop": type(asyncio.get_running_loop()).__module__,
        "frozen": gc.get_freeze_count(),
        "young_threshold": gc.get_threshold()[0],
    })

app = web.Application()
app.router.add_get("/state", state)
serve(app, host="127.0.0.1", port=int(sys.argv[1]))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, deadline: float) -> dict[str, object]:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return dict(json.loads(response.read()))
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_serve_runs_on_uvloop_with_frozen_startup_objects_and_stops_on_sigterm() -> None:
    port = _free_port()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(port)], stderr=subprocess.PIPE, text=True
    )
    try:
        state = _get(f"http://127.0.0.1:{port}/state", time.monotonic() + 60)
    finally:
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=30)
    assert str(state["loop"]).startswith("uvloop")
    assert int(str(state["frozen"])) > 0
    assert state["young_threshold"] == 50_000
    assert child.returncode == 0
    assert "aiohttp.access" not in stderr  # no access log line for the request above
