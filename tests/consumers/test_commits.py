"""The pipelined acknowledgement (`consumers.commits`): order, failures, rebalance and stop.

The broker client is replaced by a recorder of seeks and commits; the same pipeline runs against
the real broker in the consumer's integration tests (crash, two consumers, end to end).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaTimeoutError

from consumers.commits import CommitPipeline, Span
from consumers.deadletters import RecordRef
from consumers.failures import Backoff
from tests.support.postgres import both_stores

pytestmark = both_stores

P0, P1, P2 = (TopicPartition("alerts", p) for p in range(3))


class Recorder:
    """Seeks and commits as the pipeline issues them, in order."""

    def __init__(self, *, owned: set[TopicPartition] | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.owned = owned
        self.commit_error: Exception | None = None

    def seek(self, partition: TopicPartition, offset: int) -> None:
        if self.owned is not None and partition not in self.owned:
            raise IllegalStateError(f"no current assignment for {partition}")
        self.calls.append(("seek", (partition, offset)))

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.commit_error is not None:
            raise self.commit_error
        self.calls.append(("commit", offsets))


def refs(*records: tuple[int, int]) -> list[RecordRef]:
    return [RecordRef(b"{}", "alerts", partition, offset) for partition, offset in records]


def test_span_covers_each_partition_first_to_last() -> None:
    span = Span.of(refs((0, 7), (1, 3), (0, 5), (0, 9)))
    assert span.first == {P0: 5, P1: 3}
    assert span.last == {P0: 9, P1: 3}
    assert span.next_offsets() == {P0: 10, P1: 4}


async def test_commit_waits_for_the_acknowledgements_then_commits_in_order() -> None:
    consumer, pipeline = Recorder(), CommitPipeline(Backoff(first=0.0))
    acked: list[str] = []
    first = asyncio.get_running_loop().create_future()
    pipeline.start(consumer, Span.of(refs((0, 0), (0, 1))), [first], lambda: acked.append("1"))
    await asyncio.sleep(0.01)
    assert consumer.calls == []  # not acknowledged: nothing committed
    first.set_result(None)
    assert await pipeline.settle() is None
    assert acked == ["1"]
    await pipeline.drain()
    assert consumer.calls == [("commit", {P0: 2})]

    second = asyncio.get_running_loop().create_future()
    second.set_result(None)
    pipeline.start(consumer, Span.of(refs((0, 2), (1, 0))), [second], lambda: acked.append("2"))
    assert await pipeline.settle() is None
    await pipeline.drain()
    assert consumer.calls[-1] == ("commit", {P0: 3, P1: 1})
    assert acked == ["1", "2"]


class SlowFirstCommit(Recorder):
    """The first commit waits for `release`; later ones go through at once."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.commits = 0

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits += 1
        if self.commits == 1:
            await self.release.wait()
        await super().commit(offsets)


def acknowledged() -> asyncio.Future[None]:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return done


async def test_the_next_batch_is_published_while_a_commit_is_under_way_and_commits_keep_order() -> (
    None
):
    consumer, pipeline = SlowFirstCommit(), CommitPipeline(Backoff(first=0.0))
    pipeline.start(consumer, Span.of(refs((0, 0))), [acknowledged()], lambda: None)
    assert await pipeline.settle() is None  # acknowledged: the next batch may go out
    pipeline.start(consumer, Span.of(refs((0, 1))), [acknowledged()], lambda: None)
    assert await pipeline.settle() is None
    await asyncio.sleep(0.01)
    assert consumer.calls == []  # the second commit waits for the first
    drained = asyncio.create_task(pipeline.drain())
    await asyncio.sleep(0.01)
    assert not drained.done()  # a rebalance or a stop waits for every commit
    consumer.release.set()
    await drained
    assert consumer.calls == [("commit", {P0: 1}), ("commit", {P0: 2})]


async def test_a_second_batch_cannot_start_before_the_first_is_settled() -> None:
    consumer, pipeline = Recorder(), CommitPipeline(Backoff(first=0.0))
    pending = asyncio.get_running_loop().create_future()
    pipeline.start(consumer, Span.of(refs((0, 0))), [pending], lambda: None)
    with pytest.raises(RuntimeError, match="settle"):
        pipeline.start(consumer, Span.of(refs((0, 1))), [], lambda: None)
    pending.set_result(None)
    await pipeline.settle()


async def test_a_failed_acknowledgement_rewinds_and_holds_back_the_next_batch() -> None:
    consumer, pipeline = Recorder(), CommitPipeline(Backoff(first=0.0))
    failing = asyncio.get_running_loop().create_future()
    failing.set_exception(KafkaTimeoutError())
    failed_span = Span.of(refs((0, 4), (0, 5), (1, 2)))
    acked: list[int] = []
    pipeline.start(consumer, failed_span, [failing], lambda: acked.append(1))

    failed = await pipeline.settle()
    assert failed == failed_span
    assert acked == []  # never reported as published
    assert ("seek", (P0, 4)) in consumer.calls
    assert ("seek", (P1, 2)) in consumer.calls
    assert not [call for call in consumer.calls if call[0] == "commit"]

    # the next batch (already stored) is rewound on its other partitions only: P0 stays at 4
    following = Span.of(refs((0, 6), (2, 8)))
    following.rewind(consumer, keep=failed)
    assert consumer.calls[-1] == ("seek", (P2, 8))
    assert ("seek", (P0, 6)) not in consumer.calls
    assert await pipeline.settle() is None  # reported once


async def test_a_rebalance_drains_but_keeps_the_failure_for_the_next_batch() -> None:
    consumer, pipeline = Recorder(), CommitPipeline(Backoff(first=0.0))
    failing = asyncio.get_running_loop().create_future()
    failing.set_exception(KafkaTimeoutError())
    span = Span.of(refs((0, 1)))
    pipeline.start(consumer, span, [failing], lambda: None)
    await pipeline.drain()  # on_partitions_revoked
    assert await pipeline.settle() == span


async def test_a_rebalance_and_the_next_batch_wait_for_the_same_batch() -> None:
    """Neither goes on while the batch is in flight, and the failure reaches the next batch."""
    consumer, pipeline = Recorder(), CommitPipeline(Backoff(first=0.0))
    pending = asyncio.get_running_loop().create_future()
    span = Span.of(refs((0, 3)))
    pipeline.start(consumer, span, [pending], lambda: None)
    revoke = asyncio.create_task(pipeline.drain())
    handler = asyncio.create_task(pipeline.settle())
    await asyncio.sleep(0.01)
    assert not revoke.done()
    assert not handler.done()
    pending.set_exception(KafkaTimeoutError())
    assert await handler == span
    await revoke
    assert await pipeline.settle() is None
    done = asyncio.get_running_loop().create_future()
    done.set_result(None)
    pipeline.start(consumer, Span.of(refs((0, 3))), [done], lambda: None)  # nothing in flight
    assert await pipeline.settle() is None


async def test_a_cancelled_waiter_does_not_cancel_the_batch() -> None:
    consumer, pipeline = Recorder(), CommitPipeline(Backoff(first=0.0))
    pending = asyncio.get_running_loop().create_future()
    pipeline.start(consumer, Span.of(refs((0, 0))), [pending], lambda: None)
    waiter = asyncio.create_task(pipeline.drain())
    await asyncio.sleep(0.01)
    waiter.cancel()
    pending.set_result(None)
    await pipeline.close()
    assert consumer.calls == [("commit", {P0: 1})]


async def test_a_failed_commit_is_logged_and_loses_nothing() -> None:
    consumer, pipeline = Recorder(), CommitPipeline(Backoff(first=0.0))
    consumer.commit_error = CommitFailedError("the group rebalanced")
    done = asyncio.get_running_loop().create_future()
    done.set_result(None)
    pipeline.start(consumer, Span.of(refs((0, 0))), [done], lambda: None)
    assert await pipeline.settle() is None  # published: the batch may come again, no rewind
    await pipeline.drain()
    assert consumer.calls == []


async def test_a_failing_report_still_commits() -> None:
    consumer, pipeline = Recorder(), CommitPipeline(Backoff(first=0.0))
    done = asyncio.get_running_loop().create_future()
    done.set_result(None)

    def broken() -> None:
        raise ValueError("a metric went wrong")

    pipeline.start(consumer, Span.of(refs((1, 7))), [done], broken)
    assert await pipeline.settle() is None
    await pipeline.drain()
    assert consumer.calls == [("commit", {P1: 8})]


async def test_rewinding_a_partition_that_moved_skips_it() -> None:
    consumer = Recorder(owned={P1})
    Span.of(refs((0, 3), (1, 4))).rewind(consumer)
    assert consumer.calls == [("seek", (P1, 4))]


async def test_close_finishes_the_batch_in_flight() -> None:
    consumer, pipeline = Recorder(), CommitPipeline(Backoff(first=0.0))
    pending = asyncio.get_running_loop().create_future()
    pipeline.start(consumer, Span.of(refs((0, 0))), [pending], lambda: None)
    asyncio.get_running_loop().call_later(0.01, pending.set_result, None)
    await pipeline.close()
    assert pipeline.closing
    assert consumer.calls == [("commit", {P0: 1})]


async def test_a_failed_acknowledgement_backs_off_and_a_published_batch_resets_it() -> None:
    backoff = Backoff(first=0.0)
    consumer, pipeline = Recorder(), CommitPipeline(backoff)
    for offset in range(2):
        failing = asyncio.get_running_loop().create_future()
        failing.set_exception(KafkaTimeoutError())
        pipeline.start(consumer, Span.of(refs((0, offset))), [failing], lambda: None)
        assert await pipeline.settle() is not None
    assert backoff.attempts == 2  # the next retry waits longer
    done = asyncio.get_running_loop().create_future()
    done.set_result(None)
    pipeline.start(consumer, Span.of(refs((0, 0), (0, 1))), [done], lambda: None)
    assert await pipeline.settle() is None
    assert backoff.attempts == 0
