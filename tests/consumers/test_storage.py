"""The consumer's repositories on a real migrated SQLite file and PostgreSQL database: every write
is idempotent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Signal
from storage.bars import BarRecord, count_bars, recent_bars, upsert_bars
from storage.signals import (
    SIGNAL_ROWS_PER_STATEMENT,
    OutcomeRecord,
    insert_outcomes,
    insert_signals,
    pending_signals,
    signals_for_alerts,
)
from storage.tables import Bar, Outcome, SignalRow
from tests.support.postgres import both_stores

pytestmark = both_stores

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def bar(day: int, close: float = 100.0) -> BarRecord:
    return BarRecord("SPX", "1D", T0 + timedelta(days=day), close, close + 1, close - 1, close, 5.0)


def signal(alert_id: str, key: str = "SPX-direction-logreg", version: str = "v1") -> Signal:
    return Signal(
        signal_id=f"{alert_id}-{key}",
        alert_id=alert_id,
        symbol="SPX",
        interval="1D",
        bar_time=T0,
        model_key=key,
        model_version=version,
        target="direction",
        prediction=1.0,
        probability=0.6,
        action="buy",
        ood=False,
        latency_ms=3.0,
    )


async def test_the_same_bar_twice_leaves_one_row_with_the_later_values(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with session_factory() as session, session.begin():
        await upsert_bars(session=session, bars=[bar(0), bar(1), bar(1, close=150.0)])
    async with session_factory() as session, session.begin():
        await upsert_bars(session=session, bars=[bar(1, close=160.0), bar(2)])
    async with session_factory() as session:
        assert await count_bars(session=session, symbol="SPX", interval="1D") == 3
        frame = await recent_bars(session=session, symbol="SPX", interval="1D", limit=2)
        total = (await session.execute(select(func.count()).select_from(Bar))).scalar_one()
    assert total == 3
    assert list(frame.index) == [T0 + timedelta(days=1), T0 + timedelta(days=2)]
    assert frame["close"].tolist() == [160.0, 100.0]
    assert str(frame.index.tz) == "UTC"
    assert frame.index.name == "time"


async def test_a_signal_is_stored_once_per_alert_and_model(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    first = [signal("a1"), signal("a1", key="SPX-return-ridge"), signal("a2")]
    async with session_factory() as session, session.begin():
        inserted = await insert_signals(session=session, signals=first, horizons={})
    assert inserted == {s.signal_id for s in first}
    again = [signal("a1", version="v2").model_copy(update={"signal_id": "other"}), signal("a3")]
    async with session_factory() as session, session.begin():
        inserted = await insert_signals(session=session, signals=again, horizons={})
    assert inserted == {"a3-SPX-direction-logreg"}
    async with session_factory() as session:
        stored = await signals_for_alerts(session=session, alert_ids=["a1", "a1", "a3"])
    assert sorted((s.alert_id, s.model_key, s.model_version) for s in stored) == [
        ("a1", "SPX-direction-logreg", "v1"),
        ("a1", "SPX-return-ridge", "v1"),
        ("a3", "SPX-direction-logreg", "v1"),
    ]


async def test_stored_signals_read_back_as_written_and_range_queries_find_them(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """The insert passes its parameters to the driver itself: each column must be stored as the
    ORM stores it (SQLite: UTC datetimes in SQLAlchemy's text form, which range queries compare
    as text), over more rows than one statement takes."""
    signals = [
        signal(f"a{i}").model_copy(
            update={
                "bar_time": T0 + timedelta(hours=i),
                "probability": None if i % 2 else 0.25,
                "ood": bool(i % 3),
                "score": 0.5 + i / 10_000,
                "buy_threshold": 0.55,
                "sell_threshold": 0.45,
            }
        )
        for i in range(SIGNAL_ROWS_PER_STATEMENT + 3)
    ]
    async with session_factory() as session, session.begin():
        inserted = await insert_signals(
            session=session, signals=signals, horizons={"SPX-direction-logreg": 4}
        )
    assert inserted == {s.signal_id for s in signals}
    async with session_factory() as session:
        stored = await signals_for_alerts(session=session, alert_ids=[s.alert_id for s in signals])
        in_range = select(SignalRow.alert_id).where(
            SignalRow.bar_time >= signals[1].bar_time, SignalRow.bar_time < signals[3].bar_time
        )
        found = set((await session.execute(in_range)).scalars())
        horizons = set((await session.execute(select(SignalRow.horizon))).scalars())
    assert sorted(stored, key=lambda s: s.bar_time) == signals
    assert found == {"a1", "a2"}  # from the bound itself, to the other bound excluded
    assert horizons == {4}


async def test_an_outcome_is_stored_once_and_leaves_the_pending_list(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with session_factory() as session, session.begin():
        await insert_signals(session=session, signals=[signal("a1"), signal("a2")], horizons={})
    outcome = OutcomeRecord(
        "a1-SPX-direction-logreg",
        "SPX-direction-logreg",
        T0,
        T0,
        0.01,
        hit=True,
        strategy_return=0.01,
    )
    for _ in range(2):
        async with session_factory() as session, session.begin():
            await insert_outcomes(session=session, outcomes=[outcome])
    async with session_factory() as session:
        pending = await pending_signals(session=session, symbol="SPX")
        count = (await session.execute(select(func.count()).select_from(Outcome))).scalar_one()
    assert count == 1
    assert [p.signal_id for p in pending] == ["a2-SPX-direction-logreg"]


async def test_batches_of_any_size_compile_a_bounded_set_of_statements(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Under load a consumer's batches take ever new sizes: each is stored by statements of at
    most `SIGNAL_ROWS_PER_STATEMENT` rows, so that no more than that many are ever compiled per
    backend (one statement per batch size kept compiling: 5 % of a consumer's CPU)."""
    from storage.signals import _insert_signals_sql

    _insert_signals_sql.cache_clear()
    sizes = [1, 2, 3, 5, 8, 13, 21, 34, 55, 63, 64, 65, 89, 128, 144, 200, 233, 3, 200]
    stored = 0
    for n, size in enumerate(sizes):
        batch = [signal(f"b{n}-{i}") for i in range(size)]
        async with session_factory() as session, session.begin():
            stored += len(await insert_signals(session=session, signals=batch, horizons={}))
    assert stored == sum(sizes)
    compiled = _insert_signals_sql.cache_info()
    assert compiled.currsize <= SIGNAL_ROWS_PER_STATEMENT
    # the distinct chunk lengths these sizes make, each compiled once
    lengths = {min(SIGNAL_ROWS_PER_STATEMENT, size - start) for size in sizes
               for start in range(0, size, SIGNAL_ROWS_PER_STATEMENT)}  # fmt: skip
    assert compiled.misses == len(lengths)
