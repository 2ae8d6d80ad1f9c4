"""Transient or deterministic (`consumers.failures.is_transient`), the stage a failure names, and
the backoff between retries."""

from __future__ import annotations

import asyncio
import sqlite3

import pandas as pd
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from sqlalchemy import exc as sa

from bot.contracts import BadInput, NotFound, TransientError
from consumers.failures import (
    MAX_DOUBLINGS,
    Backoff,
    ProcessingFailed,
    describe,
    is_transient,
    stage,
    stage_of,
)
from tests.support.postgres import both_stores

pytestmark = both_stores


def db_error(
    kind: type[sa.DBAPIError], message: str, *, connection_invalidated: bool = False
) -> sa.DBAPIError:
    statement = "INSERT INTO signals ..."
    return kind(
        statement, {}, sqlite3.Error(message), connection_invalidated=connection_invalidated
    )


def caused(error: Exception, cause: BaseException) -> Exception:
    error.__cause__ = cause
    return error


def out_of_bounds() -> Exception:
    try:
        pd.Timestamp("9999-12-31").as_unit("ns")
    except Exception as exc:  # pandas' OutOfBoundsDatetime, a ValueError
        return exc
    raise AssertionError("pandas accepted year 9999 in nanoseconds")


TRANSIENT = [
    TransientError("the model store is unavailable"),
    db_error(sa.OperationalError, "database is locked"),
    db_error(sa.OperationalError, "attempt to write a readonly database"),
    db_error(sa.InterfaceError, "connection already closed"),
    db_error(sa.DBAPIError, "server closed the connection", connection_invalidated=True),
    # our schema or SQL, not the message: wait for the fix rather than dead-letter everything
    db_error(sa.ProgrammingError, 'relation "signals" does not exist'),
    db_error(sa.NotSupportedError, "feature not supported"),
    sa.TimeoutError("QueuePool limit of size 5 overflow 10 reached"),
    sa.DisconnectionError("connection lost"),
    KafkaConnectionError("broker gone"),
    KafkaTimeoutError(),
    TimeoutError(),
    ConnectionResetError(),
    PermissionError("artifacts/SPX-direction-logreg/v1/model.joblib"),
    ProcessingFailed("write", db_error(sa.OperationalError, "database is locked")),
    caused(RuntimeError("store failed"), TransientError("database busy")),
]
DETERMINISTIC = [
    OverflowError("Python int too large to convert to C long"),
    out_of_bounds(),
    RecursionError("maximum recursion depth exceeded"),
    ValueError("could not convert"),
    KeyError("close"),
    FloatingPointError("overflow encountered in divide"),
    MemoryError(),
    db_error(sa.IntegrityError, "NOT NULL constraint failed: signals.prediction"),
    db_error(sa.DataError, "value too long for type character varying(40)"),
    BadInput("window holds NaN"),
    NotFound("no model for SPX"),
    ProcessingFailed("features", OverflowError("Python int too large")),
    # the message's fault, whatever it was raised from
    caused(BadInput("bad bar"), TimeoutError()),
    ProcessingFailed("write", caused(db_error(sa.IntegrityError, "NOT NULL"), TimeoutError())),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=repr)
def test_failures_of_the_environment_are_transient(error: Exception) -> None:
    assert is_transient(error)


@pytest.mark.parametrize("error", DETERMINISTIC, ids=repr)
def test_failures_caused_by_the_message_are_deterministic(error: Exception) -> None:
    assert not is_transient(error)


def test_a_cause_cycle_ends() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__cause__, second.__cause__ = second, first
    assert not is_transient(first)


def test_the_innermost_stage_is_named_and_its_error_kept() -> None:
    with pytest.raises(ProcessingFailed) as raised, stage("features"), stage("predict"):
        raise OverflowError("too large")
    assert raised.value.stage == "predict"
    assert isinstance(raised.value.error, OverflowError)
    assert raised.value.__cause__ is raised.value.error
    assert stage_of(raised.value) == "predict"
    assert describe(raised.value) == "OverflowError: too large"


def test_a_database_error_is_described_without_its_statement() -> None:
    error = ProcessingFailed("write", db_error(sa.IntegrityError, "NOT NULL constraint failed"))
    assert describe(error) == "IntegrityError: NOT NULL constraint failed"
    assert stage_of(ValueError()) == "process"


def test_cancellation_passes_a_stage_unchanged() -> None:
    with pytest.raises(asyncio.CancelledError), stage("write"):
        raise asyncio.CancelledError


def test_the_backoff_doubles_up_to_its_cap_and_starts_over_after_a_success() -> None:
    backoff = Backoff(first=1.0, cap=10.0)
    assert [backoff.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0
    backoff.attempts = 10 * MAX_DOUBLINGS  # hours of outage: still a number, still the cap
    assert backoff.next_delay() == 10.0
