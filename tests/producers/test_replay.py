"""The replayer against a real receiver: CSV bars in, alerts accepted, duplicates on a rerun."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bot.contracts import BadInput, TransientError
from producers import replay as rp
from tests.conftest import SAMPLE_DIR
from tests.support.webhook import PASSPHRASE, MakeReceiver

SPX = SAMPLE_DIR / "SPX_1d.csv"


async def test_tradingview_replay_is_accepted_then_duplicate(receiver: MakeReceiver) -> None:
    client = await receiver()
    base = str(client.make_url("")).rstrip("/")
    bars = rp.read_bars(SPX, limit=12)
    shots = list(rp.tradingview_shots(bars, symbol="SPX", interval="1D", passphrase=PASSPHRASE))
    async with rp.client_session(4) as session:
        await rp.check_reachable(session, base)
        first = await rp.fire(session, base, shots, rate=0, concurrency=4)
        second = await rp.fire(session, base, shots, rate=200, concurrency=4)
    assert (first.sent, first.statuses["queued"], first.rejected) == (12, 12, 0)
    assert second.statuses["duplicate"] == 12
    assert len(set(first.accepted_ids)) == 12
    assert 0 < first.percentile(50) <= first.percentile(99)
    assert first.lines()[0] == "sent 12  accepted 0  queued 12  duplicate 0  rejected 0"


async def test_signed_replay_is_accepted_then_duplicate(
    receiver: MakeReceiver, webhook_secret: str
) -> None:
    client = await receiver()
    base = str(client.make_url("")).rstrip("/")
    bars = rp.read_bars(SAMPLE_DIR / "NDX_1d.csv", limit=5)
    shots = list(rp.signed_shots(bars, symbol="NDX", interval="1D", secret=webhook_secret))
    again = list(rp.signed_shots(bars, symbol="NDX", interval="1D", secret=webhook_secret))
    async with rp.client_session(2) as session:
        summary = await rp.fire(session, base, shots, rate=0, concurrency=2)
        rerun = await rp.fire(session, base, again, rate=0, concurrency=2)
    assert summary.statuses["queued"] == 5
    assert rerun.statuses["duplicate"] == 5  # the same bars, the same webhook-ids: no new signal


async def test_wrong_passphrase_is_counted_as_rejected(receiver: MakeReceiver) -> None:
    client = await receiver()
    base = str(client.make_url("")).rstrip("/")
    shots = list(
        rp.tradingview_shots(rp.read_bars(SPX, 2), symbol="SPX", interval="1D", passphrase="x")
    )
    async with rp.client_session(2) as session:
        summary = await rp.fire(session, base, shots, rate=0, concurrency=2)
    assert (summary.rejected, summary.statuses["401"]) == (2, 2)
    assert "  401: 2" in summary.lines()


async def test_unreachable_receiver_is_one_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with rp.client_session(1) as session:
        with pytest.raises(TransientError, match="is not reachable"):
            await rp.check_reachable(session, base)


def test_csv_problems_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "bars.csv"
    missing.write_text("time,open,high\n2026-01-01T00:00:00Z,1,2\n")
    broken = tmp_path / "broken.csv"
    broken.write_text("time,open,high,low,close,volume\n2026-01-01T00:00:00Z,1,2,x,1,1\n")
    with pytest.raises(BadInput, match="lacks the column"):
        rp.read_bars(missing)
    with pytest.raises(BadInput, match=r"broken\.csv:2"):
        rp.read_bars(broken)
    with pytest.raises(BadInput, match="is not a file"):
        rp.read_bars(tmp_path / "nope.csv")
    assert rp.symbol_from(SPX) == "SPX"
