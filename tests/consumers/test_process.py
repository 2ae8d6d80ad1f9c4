"""`itff consumer` as a process: its start-up objects are frozen out of the garbage collector
(a full collection walking them paused the event loop 110-180 ms at 500 alerts/s), and SIGTERM
stops it cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from bot.contracts import Settings
from tests.support.consumer import eventually
from tests.support.processes import start_consumer

pytestmark = pytest.mark.kafka
FROZEN = "start-up objects frozen out of the collector"


def frozen_objects(log: Path) -> int | None:
    for line in log.read_text().splitlines() if log.exists() else []:
        if line.startswith("{") and json.loads(line).get("event") == FROZEN:
            return int(json.loads(line)["objects"])
    return None


async def test_the_consumer_freezes_its_start_up_objects_and_stops_on_sigterm(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "consumer.log"
    process = start_consumer(kafka_settings, log)
    try:
        assert await eventually(lambda: _logged(log), within=120), log.read_text()[-3000:]
        frozen = frozen_objects(log)
        assert frozen is not None
        assert frozen > 10_000  # imports, settings, clients: the heap a collection walked
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()


async def _logged(log: Path) -> bool:
    return frozen_objects(log) is not None
