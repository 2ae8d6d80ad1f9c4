"""The receiver's outbox across the failures it exists for, with real parts only: a receiver process
SIGKILLed while alerts wait in its outbox, and a real broker stopped and restarted at the same
address under a running receiver. Every accepted alert reaches the topic exactly once."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.contracts import Settings
from bot.kafka import ensure_topics
from bot.kafka import local as kafka_local
from tests.producers.test_kafka import read_alerts
from tests.support.env import child_env
from tests.support.kafka import local_test_broker
from tests.support.processes import free_port
from tests.support.webhook import PASSPHRASE, MakeReceiver, down_bootstrap, tv_message

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
ITFF = Path(sys.executable).with_name("itff")
URL = "/webhook/tradingview"
START_S = 120.0


def _bar(day: int, symbol: str = "SPX") -> dict[str, Any]:
    return tv_message(ticker=symbol, time=f"2026-11-{day:02d}T00:00:00Z")


def start_receiver(
    settings: Settings, log: Path, port: int, bootstrap: str
) -> subprocess.Popen[bytes]:
    env = child_env(
        settings,
        ITFF_KAFKA_BOOTSTRAP=bootstrap,
        ITFF_TRADINGVIEW_PASSPHRASE=PASSPHRASE,
        ITFF_LOG_JSON="true",
    )
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(ITFF), "webhook", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def ready_state(http: aiohttp.ClientSession, base: str) -> dict[str, Any] | None:
    try:
        async with http.get(f"{base}/ready") as response:
            return dict(await response.json())
    except aiohttp.ClientError:
        return None


async def wait_for(probe: Any, *, within: float) -> Any:
    """Poll `probe()` until it returns something truthy (a deadline, not a timing assertion)."""
    deadline = asyncio.get_running_loop().time() + within
    while not (found := await probe()):
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"still {found!r} after {within} s")
        await asyncio.sleep(0.2)
    return found


@pytest.mark.timeout(2 * START_S + 120)  # two receiver starts + the drain and the topic read
async def test_a_receiver_sigkilled_with_a_full_outbox_delivers_each_alert_once_after_restart(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings
    log, port = tmp_path / "webhook.log", free_port()
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        first = start_receiver(settings, log, port, down_bootstrap())  # Kafka unreachable
        try:
            await wait_for(lambda: ready_state(http, base), within=START_S)
            accepted = []
            for day, symbol in [(d, s) for d in (2, 3, 4) for s in ("SPX", "NDX")]:
                async with http.post(f"{base}{URL}", json=_bar(day, symbol)) as response:
                    assert response.status == 202, await response.text()
                    body = await response.json()
                assert body["queued"] is True
                accepted.append(body["alert_id"])
            state = await ready_state(http, base)  # measured just before the kill
            assert state is not None
            assert state["outbox_depth"] == len(accepted)
            first.send_signal(signal.SIGKILL)
            assert first.wait(timeout=30) == -signal.SIGKILL
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(timeout=30)

        second = start_receiver(settings, log, port, settings.bootstrap)
        try:

            async def drained() -> bool:
                state = await ready_state(http, base)
                return state == {"status": "ready", "kafka": True, "outbox_depth": 0}

            await wait_for(drained, within=START_S + 60)
            async with http.post(f"{base}{URL}", json=_bar(2)) as retry:  # TradingView resends
                assert retry.status == 200
                assert (await retry.json())["status"] == "duplicate"
        finally:
            second.send_signal(signal.SIGTERM)
            code = second.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]
    records = await read_alerts(settings, len(accepted))
    ids = [json.loads(r.value)["alert_id"] for r in records]
    assert sorted(ids) == sorted(accepted)  # each accepted alert, exactly once


@pytest.mark.timeout(3 * 180 + 120)  # three broker starts (up to 180 s each) + the waits
async def test_a_broker_restarted_at_the_same_address_under_a_running_receiver(
    receiver: MakeReceiver, settings: Settings, tmp_path: Path
) -> None:
    broker = local_test_broker(tmp_path / "kafka")
    await kafka_local.start(broker)
    try:
        configured = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
        await ensure_topics(configured)
        client = await receiver(base=configured)

        async def post(day: int) -> dict[str, Any]:
            response = await client.post(URL, json=_bar(day))
            assert response.status == 202, await response.text()
            return dict(await response.json())

        before = [await post(day) for day in (5, 6)]
        assert [b["queued"] for b in before] == [False, False]  # straight to Kafka

        await asyncio.to_thread(kafka_local.stop, broker)
        during = [await post(day) for day in (7, 8, 9)]
        assert [d["queued"] for d in during] == [True] * 3  # into the outbox

        async def down() -> bool:  # /ready answers from its last probe (at most 5 s old)
            state = await (await client.get("/ready")).json()
            return bool(state["kafka"] is False and state["outbox_depth"] == 3)

        await wait_for(down, within=30)  # measured while the broker is still down

        await kafka_local.start(broker)  # the same ports and data directory

        async def drained() -> bool:
            state = await (await client.get("/ready")).json()
            return bool(state == {"status": "ready", "kafka": True, "outbox_depth": 0})

        await wait_for(drained, within=120)
        after = [await post(day) for day in (10, 11)]
        accepted = [b["alert_id"] for b in (*before, *during, *after)]
        records = await read_alerts(configured, len(accepted))
        ids = [json.loads(r.value)["alert_id"] for r in records]
        assert sorted(ids) == sorted(accepted)  # each exactly once
        days = [json.loads(r.value)["bar_time"][:10] for r in records]
        assert days == [f"2026-11-{day:02d}" for day in range(5, 12)]  # in order
    finally:
        await asyncio.to_thread(kafka_local.stop, broker)
