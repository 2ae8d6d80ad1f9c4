"""`itff signals tail` against a real broker, as a subscriber runs it: live from the end of the
topic (or from its beginning), filtered, as JSON lines or a table; a record that is not a signal is
named on stderr, never dropped silently; a missing topic is one line saying what to do."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

import pytest

from bot.contracts import Settings, Signal
from tests.support.cli import ROOT, run_itff
from tests.support.consumer import produce
from tests.support.env import child_env

pytestmark = pytest.mark.kafka
BAR = datetime(2018, 12, 31, tzinfo=UTC)


def signal(symbol: str, action: str, model: str = "direction-logreg") -> Signal:
    return Signal(
        alert_id=f"alert-{symbol}-{action}",
        symbol=symbol,
        interval="1D",
        bar_time=BAR,
        model_key=f"{symbol}-{model}",
        model_version="20181231T000000Z",
        target="direction",
        prediction=1.0 if action == "buy" else 0.0,
        probability=0.61,
        action=action,
        ood=False,
        latency_ms=4.2,
    )


async def send(settings: Settings, *values: Signal | bytes) -> None:
    """Signals keyed by symbol; raw bytes keyed "SPX", so that a bad record sits on the same
    partition as the SPX signals around it and `--count` cannot end the tail before it is read."""
    await produce(
        settings.bootstrap,
        settings.topics.signals,
        [
            (v.symbol.encode(), v.model_dump_json().encode())
            if isinstance(v, Signal)
            else (b"SPX", v)
            for v in values
        ],
    )


async def start_tail(settings: Settings, *args: str) -> asyncio.subprocess.Process:
    env = child_env(settings) | {"PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from bot.cli import main; main()",
        "signals",
        "tail",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    first = await asyncio.wait_for(process.stderr.readline(), 60)
    assert first.startswith(b"tailing "), first
    return process


async def finish(process: asyncio.subprocess.Process) -> tuple[str, str]:
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err
    return out.decode(), err.decode()


async def test_tail_shows_new_matching_signals_as_json_and_names_bad_records(
    kafka_settings: Settings,
) -> None:
    await send(kafka_settings, signal("SPX", "sell"))  # before the tail: not shown
    process = await start_tail(kafka_settings, "--json", "--symbol", "spx", "--count", "2")
    wanted = [signal("SPX", "buy"), signal("SPX", "hold", "return-ridge")]
    await send(kafka_settings, signal("NDX", "buy"), wanted[0], b"{not json", wanted[1])
    out, err = await finish(process)
    assert [Signal.model_validate_json(line) for line in out.splitlines()] == wanted
    assert "not a valid signal" in err
    assert "value: Invalid JSON" in err


async def test_tail_from_the_beginning_as_a_table_filtered_by_model(
    kafka_settings: Settings,
) -> None:
    await send(
        kafka_settings,
        signal("SPX", "buy"),
        signal("NDX", "sell", "return-ridge"),
        signal("NDX", "hold"),
    )
    process = await start_tail(
        kafka_settings,
        "--from-beginning",
        "--model",
        "NDX-return-ridge",
        "--model",
        "SPX-direction-logreg",
        "--count",
        "2",
    )
    out, _ = await finish(process)
    header, *rows = out.splitlines()
    assert header.split()[:5] == ["emitted_at", "symbol", "interval", "bar_time", "action"]
    # emitted_at and bar_time take two words each; partitions differ, so any order
    assert sorted((r.split()[2], r.split()[6]) for r in rows) == [("NDX", "sell"), ("SPX", "buy")]
    assert all("0.610" in r for r in rows)


def test_tail_without_the_topic_says_what_to_do(settings: Settings, kafka_bootstrap: str) -> None:
    configured = settings.model_copy(update={"kafka_bootstrap": kafka_bootstrap})
    result = run_itff(child_env(configured), "signals", "tail")
    assert result.returncode == 1
    assert "does not exist" in result.stderr
    assert "itff up" in result.stderr
    assert "Traceback" not in result.stderr
