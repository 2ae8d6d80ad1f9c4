"""What a failed batch means: retry it later (transient) or find the records that break it
(deterministic), and how long to wait before a retry.

`is_transient` is the one place that tells them apart. It looks at the exception, then at what
caused it (`ProcessingFailed.error`, `raise ... from`); the first rule that matches decides:

1. `bot.contracts.BadInput`: deterministic (the input is wrong; the same call fails again).
2. `bot.contracts.TransientError`: transient (a dependency is unavailable for now).
3. The database, by SQLAlchemy's (PEP 249) classes: `IntegrityError` and `DataError` are
   deterministic (a value broke a constraint or a type: the message caused it). Every other
   database error is transient: `OperationalError` (database locked or busy, read-only, disk I/O,
   cannot open, connection lost, serialization failure), `InterfaceError`, `DisconnectionError`,
   the pool's `TimeoutError`, and also `ProgrammingError` and `NotSupportedError` (a missing
   table or column, SQL the database refuses: a deployment or code fault, not the message's, so
   records wait for the fix instead of all being dead-lettered).
4. Kafka (`aiokafka.errors.KafkaError`): transient.
5. Timeouts and I/O with the environment (`TimeoutError`, `ConnectionError`, any `OSError`):
   transient.
6. Anything else is deterministic: caused by the message itself (`ValueError`, `OverflowError`,
   pandas' `OutOfBoundsDatetime`, `RecursionError`, a numpy `FloatingPointError`, ...).

A transient failure rewinds the batch and retries it after `Backoff`'s delay; a deterministic one
never stalls: the batch is split until the records that fail alone are found, and only those go
to the dead-letter topic (`processing_failed`, with the `Stage` they failed in). SQLite reports a
few errors of our own making as `OperationalError` (a missing table), PostgreSQL as
`ProgrammingError`: both are retried, which loses nothing while an operator fixes them.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from aiokafka.errors import KafkaError
from sqlalchemy import exc as sa

from bot.contracts import BadInput, TransientError
from bot.runtime import get_logger
from consumers import telemetry

log = get_logger(__name__)

Stage = Literal["decode", "read", "features", "predict", "write"]

_DETERMINISTIC: tuple[type[BaseException], ...] = (BadInput, sa.IntegrityError, sa.DataError)
_TRANSIENT: tuple[type[BaseException], ...] = (
    TransientError,
    sa.DBAPIError,  # every other database error: OperationalError, ProgrammingError, ...
    sa.DisconnectionError,
    sa.TimeoutError,
    KafkaError,
    OSError,  # TimeoutError and ConnectionError included
)


class ProcessingFailed(Exception):  # noqa: N818 - named for what happened, as the cause is kept
    """Processing a batch failed in `stage`; `error` is what was raised there (its cause too)."""

    def __init__(self, stage: Stage, error: Exception) -> None:
        super().__init__(f"{stage}: {type(error).__name__}: {error}")
        self.stage: Stage = stage
        self.error = error


class _StageScope:
    __slots__ = ("name",)

    def __init__(self, name: Stage) -> None:
        self.name: Stage = name

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(error, Exception) and not isinstance(error, ProcessingFailed):
            raise ProcessingFailed(self.name, error) from error


@functools.cache
def stage(name: Stage) -> _StageScope:
    """`with stage("write"): ...`: an exception raised inside becomes `ProcessingFailed("write")`
    (an inner stage, already named, is kept). Cancellation passes through unchanged."""
    return _StageScope(name)


def is_transient(error: BaseException) -> bool:
    """True when retrying the same records later may succeed (see the rules above)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _DETERMINISTIC):
            return False
        if isinstance(current, _TRANSIENT):
            return True
        current = current.error if isinstance(current, ProcessingFailed) else current.__cause__
    return False


def stage_of(error: BaseException) -> str:
    """The stage named by `ProcessingFailed`; `process` for an error raised outside one."""
    return error.stage if isinstance(error, ProcessingFailed) else "process"


def describe(error: BaseException) -> str:
    """`Type: message` of what was raised (a database error without its SQL and parameters)."""
    inner = error.error if isinstance(error, ProcessingFailed) else error
    text = str(inner.orig) if isinstance(inner, sa.DBAPIError) else str(inner)
    return f"{type(inner).__name__}: {text}"


MAX_DOUBLINGS = 30  # beyond it the delay is capped anyway; keeps 2**n a small number


@dataclass(slots=True)
class Backoff:
    """Delays between the retries of transient failures: `first` seconds, doubling, at most
    `cap`; back to `first` after a success (`reset`). The cap stays below the broker's graceful
    stop (15 s), so a stop never waits for a long sleep; there is one partition owner per
    partition, so the delays need no jitter."""

    first: float = 1.0
    cap: float = 10.0
    attempts: int = 0

    def next_delay(self) -> float:
        delay: float = min(self.cap, self.first * 2.0 ** min(self.attempts, MAX_DOUBLINGS))
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0

    async def wait(self, stage: str, error: BaseException, *, records: int) -> None:
        """Count the retry (`itff_consumer_transient_retries_total{stage}`), log it, sleep."""
        delay = self.next_delay()
        telemetry.TRANSIENT_RETRIES.labels(stage=stage).inc()
        log.warning(
            "transient failure: the batch is rewound and retried",
            stage=stage,
            error=describe(error),
            retry_in_seconds=delay,
            attempt=self.attempts,
            records=records,
        )
        await asyncio.sleep(delay)
