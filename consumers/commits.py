"""Pipelined acknowledgement: batch N waits for Kafka's acknowledgement and commits its offsets
while batch N+1 is decoded, predicted, stored and published.

The alerts handler hands each batch over once its bars and signals are stored and its signals and
dead letters are queued for sending (`CommitPipeline.start`); the next handler call first settles
the batch in flight (`settle`: waits for its acknowledgement, not for its commit), then publishes
its own. Commits run behind, one after the other. So at most one batch is between publication and
acknowledgement, and the guarantees of a sequential handler hold:

- a batch's offsets are committed only after its rows are stored and Kafka acknowledged its
  records, and only after every earlier batch was committed (commits are strictly in order: each
  waits for the one before);
- a batch's signals are sent only after the previous batch's were acknowledged, so signals keep
  the order of their alerts on each partition;
- if an acknowledgement fails, every partition of that batch is sought back to its first record
  (after the transient failures' backoff, `consumers.failures.Backoff`, which a published batch
  resets), its offsets are not committed, and the next batch, already stored, is neither
  published nor committed: its partitions that the failed batch did not rewind are sought back
  too, so both batches come again (storage is idempotent; a redelivered alert's stored signals
  are published with the same `signal_id`);
- on a rebalance (`on_partitions_revoked`) and at shutdown (`close`) the batch in flight is
  settled and every commit is done before the partitions are given up (`drain`), so a clean stop
  leaves nothing to redeliver.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from bot.runtime import get_logger
from consumers import telemetry
from consumers.deadletters import RecordRef
from consumers.failures import Backoff

log = get_logger(__name__)


class OffsetConsumer(Protocol):
    """What the pipeline needs of the subscriber's aiokafka consumer."""

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...


@dataclass(frozen=True, slots=True)
class Span:
    """The offsets a batch covers, per partition (first and last record)."""

    first: dict[TopicPartition, int]
    last: dict[TopicPartition, int]

    @classmethod
    def of(cls, refs: Sequence[RecordRef]) -> Span:
        first: dict[TopicPartition, int] = {}
        last: dict[TopicPartition, int] = {}
        for ref in refs:
            tp = TopicPartition(ref.topic, ref.partition)
            first[tp] = min(first.get(tp, ref.offset), ref.offset)
            last[tp] = max(last.get(tp, ref.offset), ref.offset)
        return cls(first, last)

    def rewind(self, consumer: OffsetConsumer, *, keep: Span | None = None) -> None:
        """Seek every partition back to its first record; partitions `keep` already rewound (to
        earlier offsets) are left where they are."""
        for tp, offset in self.first.items():
            if keep is not None and tp in keep.first:
                continue
            try:
                consumer.seek(tp, offset)
            except IllegalStateError:  # no longer ours: its new owner starts at the commit
                log.info(
                    "partition moved before its rewind", partition=f"{tp.topic}:{tp.partition}"
                )

    def next_offsets(self) -> dict[TopicPartition, int]:
        return {tp: offset + 1 for tp, offset in self.last.items()}


@dataclass(slots=True)
class _Flight:
    task: asyncio.Task[Span | None]  # the acknowledgement: the failed span, or None


class CommitPipeline:
    """The batch between publication and acknowledgement, the commits behind it, and how they
    end."""

    def __init__(self, backoff: Backoff | None = None) -> None:
        self.backoff = backoff or Backoff()
        self._flight: _Flight | None = None
        self._commit: asyncio.Task[None] | None = None  # the last batch's commit (in order)
        self._failed: Span | None = None  # a failed batch the next handler has not seen yet
        self.closing = False

    async def drain(self) -> None:
        """Wait until no batch is in flight and every commit is done (a failure is kept for
        `settle`).

        The handler and a rebalance may wait for the same batch: it stays in flight until it is
        over, so neither goes on before it; and a cancelled waiter never cancels the batch.
        """
        await self._acknowledged()
        commit = self._commit
        if commit is not None:
            await asyncio.shield(commit)
            if self._commit is commit:
                self._commit = None

    async def settle(self) -> Span | None:
        """Wait for the batch in flight to be acknowledged (its commit may still be under way),
        then the span of a batch whose publication failed (it was rewound), if any: the
        caller's batch must then be rewound too, neither published nor committed."""
        await self._acknowledged()
        failed, self._failed = self._failed, None
        return failed

    async def _acknowledged(self) -> None:
        flight = self._flight
        if flight is None:
            return
        failed = await asyncio.shield(flight.task)
        if self._flight is flight:
            self._flight = None
            if failed is not None:
                self._failed = failed

    def start(
        self,
        consumer: OffsetConsumer,
        span: Span,
        pending: Sequence[asyncio.Future[Any]],
        acknowledged: Callable[[], None],
    ) -> None:
        """Wait for `pending` in the background, then commit `span` once the batches before it
        are committed; `settle` must come first."""
        if self._flight is not None:
            raise RuntimeError("settle the batch in flight before starting another")
        task = asyncio.create_task(
            self._finish(consumer, span, pending, acknowledged, time.perf_counter()),
            name="itff-batch-acknowledgement",
        )
        self._flight = _Flight(task)
        self._commit = asyncio.create_task(
            _commit_after(consumer, span, task, self._commit), name="itff-batch-commit"
        )

    async def close(self) -> None:
        """From now on every batch is committed before its handler returns; finish the one in
        flight (called before the subscriber stops, so a clean stop leaves nothing behind)."""
        self.closing = True
        await self.drain()

    async def _finish(
        self,
        consumer: OffsetConsumer,
        span: Span,
        pending: Sequence[asyncio.Future[Any]],
        acknowledged: Callable[[], None],
        sent: float,
    ) -> Span | None:
        try:
            await asyncio.gather(*pending)
        except Exception as exc:  # any failure means: not published, deliver again
            telemetry.BATCH_FAILURES.inc()
            log.warning(
                "publishing a batch failed; it will be redelivered",
                partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in span.first),
            )
            await self.backoff.wait("publish", exc, records=len(pending))
            span.rewind(consumer)  # before the next handler hears of it (`settle`)
            return span
        self.backoff.reset()
        telemetry.STAGE_PUBLISH.observe(time.perf_counter() - sent)
        try:
            acknowledged()
        except Exception:  # metrics and log lines only: never a reason to deliver again
            log.exception("reporting a published batch failed")
        return None


async def _commit_after(
    consumer: OffsetConsumer,
    span: Span,
    acknowledgement: asyncio.Task[Span | None],
    before: asyncio.Task[None] | None,
) -> None:
    """Once the batch is acknowledged and the batch before it committed: commit it (unless its
    publication failed: it was rewound)."""
    failed = await acknowledgement
    if before is not None:
        await before
    if failed is None:
        await commit(consumer, span)


async def commit(consumer: OffsetConsumer, span: Span) -> None:
    """Commit the batch's offsets. A failed commit (a rebalance under way) loses nothing: the
    batch is delivered again, its insert is skipped and its stored signals are published again
    with the same `signal_id`."""
    started = time.perf_counter()
    try:
        await consumer.commit(span.next_offsets())
    except KafkaError as exc:
        log.warning("offset commit failed; the batch may be delivered again", error=repr(exc))
        return
    except Exception:  # never leave the pipeline with an exception the next batch would meet
        log.exception("offset commit failed; the batch may be delivered again")
        return
    telemetry.STAGE_COMMIT.observe(time.perf_counter() - started)
