"""The garbage collector of a long-running service: out of the way of its requests and batches.

A service's start-up builds objects that live as long as the process (imports, settings, the app,
the Kafka clients, the served models). CPython's full collection walks every tracked object, so
with those in the heap each one took 0.1-0.4 s, on the event loop, in the middle of whatever ran:

- the receiver: a pause of ~0.4 s that alone set a run's p99 (docs/webhook.md, Benchmark);
- the consumer at 500 alerts/s: 130-180 ms over ~250,000 objects, every few seconds, holding
  every batch in flight (docs/consumers.md, "Pauses round").

`freeze_startup_objects()`, called once start-up is done, moves them to the permanent
generation (`gc.freeze`), so a collection walks only what was made since; and the youngest
generation is collected every 50,000 net allocations instead of 700: the per-request and
per-batch garbage is freed by reference counting, and those collections only cost time.
"""

from __future__ import annotations

import gc

YOUNG_GENERATION_THRESHOLD = 50_000


def freeze_startup_objects() -> int:
    """Collect once, freeze what survives, and space out the youngest generation's runs;
    returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:])
    return gc.get_freeze_count()
