"""The local broker's installation helpers."""

from __future__ import annotations

from bot.kafka.install import _random_cluster_id


def test_cluster_ids_never_start_with_a_dash_which_kafka_storage_reads_as_an_option() -> None:
    ids = [_random_cluster_id() for _ in range(5000)]  # ~78 would start with "-" if not redrawn
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids)
    assert len(set(ids)) == len(ids)
