"""The alert audit log: one JSON line per webhook request, through the real app and writer thread.

Kafka is down (tests/support/webhook.py): accepted alerts are queued in the real SQLite outbox.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from bot.contracts import Settings
from producers.audit import AuditLog, AuditRecord, audit_path
from tests.support.webhook import (
    PASSPHRASE,
    MakeReceiver,
    dumps,
    gauge,
    signed_headers,
    tv_message,
    until,
)

TV = "/webhook/tradingview"
SIGNED = "/webhook"


def _lines(report_dir: Path) -> list[dict[str, Any]]:
    path = audit_path(report_dir, datetime.now(UTC).date().isoformat())
    return [json.loads(line) for line in path.read_text().splitlines()]


async def _dropped(client: TestClient[Any, Any]) -> float:
    return await gauge(client, "itff_audit_lines_dropped_total")


async def test_every_request_gets_one_line_with_its_answer_and_no_secret(
    receiver: MakeReceiver, settings: Settings, webhook_secret: str
) -> None:
    client = await receiver()
    accepted = await client.post(TV, json=tv_message())
    assert accepted.status == 202
    alert_id = (await accepted.json())["alert_id"]
    assert (await client.post(TV, json=tv_message())).status == 200  # duplicate
    assert (await client.post(TV, json=tv_message(passphrase="wrong-" + PASSPHRASE))).status == 401
    hostile = dumps(tv_message(high=-1.0, note="x" * 3000, nested={"a": [PASSPHRASE] * 3}))
    assert (
        await client.post(TV, data=hostile, headers={"Content-Type": "application/json"})
    ).status == 422
    assert (
        await client.post(TV, data=b"\xff\xfe{", headers={"Content-Type": "application/json"})
    ).status == 400
    too_large = await client.post(
        TV, data=b"{}" * 40000, headers={"Content-Type": "application/json"}
    )
    assert too_large.status == 413
    body = dumps(tv_message(passphrase=..., ticker="NDX"))
    headers = signed_headers(body, webhook_secret, msg_id="msg_audit1")
    assert (await client.post(SIGNED, data=body, headers=headers)).status == 202
    forged = signed_headers(body, "whsec_" + "A" * 32, msg_id="msg_audit2")
    assert (await client.post(SIGNED, data=body, headers=forged)).status == 401
    await client.close()  # the writer thread writes what is queued, then ends

    lines = _lines(settings.report_dir)
    assert [(x["source"], x["status"], x["error"]) for x in lines] == [
        ("tradingview", 202, None),
        ("tradingview", 200, None),
        ("tradingview", 401, "unauthorized"),
        ("tradingview", 422, "validation"),
        ("tradingview", 400, "limit_exceeded"),
        ("tradingview", 413, "payload_too_large"),
        ("signed", 202, None),
        ("signed", 401, "unauthorized"),
    ]
    first = lines[0]
    assert first["alert_id"] == alert_id
    assert (first["symbol"], first["interval"], first["outcome"]) == ("SPX", "1D", "queued")
    assert first["bar_time"] == "2026-11-27T00:00:00+00:00"
    assert lines[1]["outcome"] == "duplicate"
    assert lines[6]["alert_id"] == "signed:msg_audit1"
    assert lines[6]["symbol"] == "NDX"
    assert all(x["latency_ms"] >= 0 for x in lines)
    assert lines[3]["symbol"] is None  # nothing of a refused body is kept
    text = audit_path(settings.report_dir, datetime.now(UTC).date().isoformat()).read_text()
    for secret in (PASSPHRASE, webhook_secret, headers["webhook-signature"], "xxxx"):
        assert secret not in text


async def test_an_unwritable_audit_file_neither_fails_the_request_nor_goes_unnoticed(
    receiver: MakeReceiver, settings: Settings, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the report folder should be")
    client = await receiver(report_dir=blocked)
    assert (await client.post(TV, json=tv_message())).status == 202

    async def dropped() -> float:
        return await _dropped(client)

    await until(dropped, 1.0)


def test_a_full_buffer_drops_the_line_and_counts_it(tmp_path: Path) -> None:
    drops: list[int] = []
    audit = AuditLog(tmp_path, on_drop=lambda: drops.append(1), capacity=2)
    entry = AuditRecord(time=datetime.now(UTC), source="tradingview", status=202, latency_ms=1.0)
    for _ in range(3):
        audit.record(entry)  # no writer yet: the third finds the buffer full
    assert len(drops) == 1
    audit.start()
    audit.stop()
    assert len(_lines(tmp_path)) == 2
