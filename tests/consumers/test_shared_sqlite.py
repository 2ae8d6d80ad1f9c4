"""Several consumer processes on one SQLite file, as compose runs them: every process writes bars
and signals in its own transactions; SQLite lets one writer in at a time, and a "database is
locked" moment must end in a retry, never in a lost or doubled write."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Settings
from storage.tables import Bar
from tests.support.consumer import (
    SEED_BARS,
    count_rows,
    eventually,
    group_partitions,
    interleaved_symbols,
    signal_rows,
)
from tests.support.processes import free_port, ready, scraped, start_consumer, trickle

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
PROCESSES = 3
SYMBOLS = ["SPX", "NDX", "AAA", "BBB", "CCC", "DDD"]


@pytest.mark.timeout(900)  # three process starts (180 s) + the waits below (120 + 240 s)
async def test_three_consumer_processes_on_one_sqlite_file_lose_and_double_nothing(
    kafka_settings: Settings, session_factory: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    settings = kafka_settings
    keys, interleaved = await interleaved_symbols(settings, session_factory, SYMBOLS, 80)
    log = tmp_path / "consumers.log"
    ports = [free_port() for _ in range(PROCESSES)]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.extend(start_consumer(settings, log, metrics_port=p) for p in ports)
        assert await eventually(lambda: ready(log, PROCESSES), within=180), log.read_text()[-3000:]

        async def all_own_partitions() -> bool:
            members = await group_partitions(settings)
            return len(members) == PROCESSES and all(members.values())

        assert await eventually(all_own_partitions, within=120)  # every process writes
        await trickle(settings, interleaved, chunk=30, pause=0.05)

        async def all_stored() -> bool:
            return len(await signal_rows(session_factory)) >= len(interleaved)

        assert await eventually(all_stored, within=240), log.read_text()[-3000:]
        retries = [await scraped(p, "itff_consumer_transient_retries_total") for p in ports]
        letters = [await scraped(p, "itff_consumer_dead_letters_total") for p in ports]
        signals = [await scraped(p, "itff_consumer_signals_total") for p in ports]
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(timeout=60) for process in processes]
    assert codes == [0] * PROCESSES, log.read_text()[-3000:]
    print(f"shared SQLite: signals per process {signals}, transient retries {retries}")

    assert letters == [0] * PROCESSES  # nothing dead-lettered for a locked database
    # several writers at once (symbols hash to partitions: a process may own only empty ones)
    assert sum(n > 0 for n in signals) >= 2
    rows = await signal_rows(session_factory)
    by_symbol = {k.split("-")[0]: k for k in keys}
    expected = Counter((a.alert_id, by_symbol[a.symbol]) for a in interleaved)
    assert Counter((r.alert_id, r.model_key) for r in rows) == expected
    assert await count_rows(session_factory, Bar) == len(SYMBOLS) * (SEED_BARS + 80)
