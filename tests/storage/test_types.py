"""`UtcDateTime`: on SQLite the fast writer stores exactly the text SQLAlchemy's own would; on
both stores an instant comes back as it went in, whatever the time zones around it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from storage.tables import Bar, Base, UtcDateTime, _SqliteDateTime
from tests.support.postgres import both_stores

MOMENTS = [
    datetime(2019, 1, 2, tzinfo=UTC),
    datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(999, 12, 31, 1, 2, 3, 45, tzinfo=UTC),
    datetime(2026, 11, 29, 18, 0, 0, 123_000, tzinfo=timezone(timedelta(hours=-5))),
]


@pytest.mark.parametrize("moment", MOMENTS)
def test_sqlite_text_is_sqlalchemys_own(moment: datetime) -> None:
    dialect = sqlite.dialect()
    naive = UtcDateTime().process_bind_param(moment, dialect)
    assert naive is not None
    ours = _SqliteDateTime().bind_processor(dialect)(naive)  # type: ignore[no-untyped-call]
    theirs = sqlite.DATETIME().bind_processor(dialect)(naive)  # type: ignore[no-untyped-call]
    assert ours == theirs


def test_sqlite_columns_use_the_fast_writer() -> None:
    assert isinstance(UtcDateTime().dialect_impl(sqlite.dialect()).impl, _SqliteDateTime)


def test_round_trip_through_sqlite_keeps_the_instant() -> None:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    moment = MOMENTS[3]
    with Session(engine) as session, session.begin():
        session.add(
            Bar(symbol="SPX", interval="1D", time=moment, open=1, high=1, low=1, close=1, volume=1)
        )
    with Session(engine) as session:
        stored = session.scalar(select(Bar.time))
        raw = session.scalar(text("SELECT time FROM bars"))
    assert stored == moment
    assert stored is not None
    assert stored.tzinfo is UTC
    assert raw == "2026-11-29 23:00:00.123000"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        UtcDateTime().process_bind_param(datetime(2019, 1, 2), sqlite.dialect())  # noqa: DTZ001


@both_stores
async def test_the_instant_survives_any_client_and_session_time_zone(
    session_factory: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither the process's local zone nor the server session's moves a stored instant."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        async with session_factory() as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":
                await session.execute(text("SET TIME ZONE 'Asia/Tokyo'"))
            session.add_all(
                Bar(symbol="SPX", interval="1D", time=moment, open=1, high=1, low=1, close=1)
                for moment in MOMENTS
            )
        async with session_factory() as session:
            stored = list(await session.scalars(select(Bar.time).order_by(Bar.time)))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert stored == sorted(MOMENTS)
    assert all(moment.tzinfo is UTC for moment in stored)
