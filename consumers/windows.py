"""Per-symbol rolling bar windows, the kinds of bars, and the history an alert is predicted on.

A window holds the last `size` bars of one (symbol, interval), seeded from the `bars` table the
first time the symbol is seen (so the first alert after a start already has its history), and
re-read from the database, which is the truth, after a rebalance, an error, or a minute.

Every alert is predicted point-in-time: on the `size` bars up to and including its own bar, never
a later one, whatever the kind of its bar (counted in `itff_consumer_bars_total{kind}`):

- **new**: later than every known bar (the live case);
- **duplicate**: the same time as a known bar (a revision, a repeat, a bar the data refresh
  stored first): its values replace the stored ones;
- **late**: older than the last known bar but not known: inserted.

A batch's alerts of one group are applied in offset order, in *runs* of strictly increasing bar
times: within a run no alert changes the history of an earlier one, so the whole run is predicted
on one frame and each alert still sees exactly the bars known at its offset.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from enum import StrEnum

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from bot.contracts import Alert
from storage.bars import BAR_FIELDS

WindowKey = tuple[str, str]


@functools.lru_cache(maxsize=256)
class BarKind(StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"
    LATE = "late"


def _nanoseconds(alerts: Sequence[Alert]) -> NDArray[np.int64]:
    """The alerts' bar times as UTC nanoseconds (their datetimes are UTC-aware)."""
    return np.array(
        [round(alert.bar_time.timestamp() * 1e6) * 1000 for alert in alerts], dtype=np.int64
    )


_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


def _values(alerts: Sequence[Alert]) -> NDArray[np.float64]:
    return np.array(
        [[alert.open, alert.high, alert.low, alert.close, alert.volume] for alert in alerts],
        dtype="float64",
    ).reshape(len(alerts), len(BAR_FIELDS))


def _frame(times: NDArray[np.int64], values: NDArray[np.float64]) -> pd.DataFrame:
    index = pd.DatetimeIndex(times, dtype=_UTC_NS, name="time")
    return pd.DataFrame(values, index=index, columns=list(BAR_FIELDS))


def alert_bars(alerts: Sequence[Alert]) -> pd.DataFrame:
    """The alerts' bars as a bars frame (not deduplicated, in the order given)."""
    return _frame(_nanoseconds(alerts), _values(alerts))


def _last_time(window: pd.DataFrame) -> int | None:
    return int(window.index[-1].value) if len(window) else None


def apply_run(frame: pd.DataFrame, alerts: Sequence[Alert]) -> tuple[pd.DataFrame, list[int]]:
    """`frame` with a run's bars (strictly increasing times) upserted, and their positions."""
    times = _nanoseconds(alerts)
    last = _last_time(frame)
    if last is not None and times[0] > last:  # the live case: appended
        index = pd.DatetimeIndex(frame.index).as_unit("ns").asi8
        merged = _frame(
            np.concatenate([index, times]), np.vstack([frame.to_numpy(), _values(alerts)])
        )
        return merged, list(range(len(frame), len(merged)))
    incoming = _frame(times, _values(alerts))
    merged = upsert(frame, incoming)
    return merged, [int(p) for p in merged.index.get_indexer(incoming.index)]


def classify(window: pd.DataFrame, alerts: Sequence[Alert]) -> tuple[BarKind, ...]:
    """The kind of each alert's bar against the window and the alerts before it."""
    times = _nanoseconds(alerts)
    last_known = _last_time(window)
    if (
        last_known is not None
        and len(times)
        and times[0] > last_known
        and bool((np.diff(times) > 0).all())
    ):
        return (BarKind.NEW,) * len(times)  # the live case, without a set of the window
    index = pd.DatetimeIndex(window.index).as_unit("ns")
    known = set(index.asi8.tolist())
    last = max(known) if known else None
    kinds: list[BarKind] = []
    for moment in times.tolist():
        if moment in known:
            kinds.append(BarKind.DUPLICATE)
        elif last is None or moment > last:
            kinds.append(BarKind.NEW)
            last = moment
        else:
            kinds.append(BarKind.LATE)
        known.add(moment)
    return tuple(kinds)


def runs(alerts: Sequence[Alert]) -> list[list[int]]:
    """Indexes of the alerts in runs of strictly increasing bar times, in offset order."""
    found: list[list[int]] = []
    last = None
    for i, alert in enumerate(alerts):
        if last is None or alert.bar_time <= last:
            found.append([])
        found[-1].append(i)
        last = alert.bar_time
    return found


def upsert(frame: pd.DataFrame, incoming: pd.DataFrame) -> pd.DataFrame:
    """The bars of `frame` with `incoming` (unique times) inserted or replacing, sorted."""
    if not len(frame):
        return incoming.sort_index()
    if incoming.index.is_monotonic_increasing and incoming.index[0] > frame.index[-1]:
        values = np.vstack([frame.to_numpy(), incoming.to_numpy()])  # the live case: appended
        index = frame.index.append(incoming.index)
        return pd.DataFrame(values, index=index, columns=frame.columns)
    combined = pd.concat([frame[~frame.index.isin(incoming.index)], incoming])
    return combined.sort_index()


def covered_after(window: pd.DataFrame, size: int) -> pd.Timestamp | None:
    """Alerts for bars after this time find their `size` bars of history in the window; for a
    bar at or before it, some must be read from the database. None: the window lacks nothing
    (shorter than `size`, it holds the whole stored history)."""
    if len(window) < size or size < 2:  # noqa: PLR2004 - a bar and one before it
        return None
    return pd.Timestamp(window.index[size - 2])


def with_history(window: pd.DataFrame, older: pd.DataFrame) -> pd.DataFrame:
    """Stored bars read for old alerts joined with the window (the window's newer bars kept)."""
    if not len(older):
        return window
    newer = window[window.index > older.index[-1]]
    return pd.concat([older, newer]) if len(newer) else older


class BarWindows:
    """The rolling windows of one consumer process, keyed by (symbol, interval).

    A window is re-read from the database when it is older than `max_age` seconds since its
    last seed, so bars stored by others (data refresh, `itff backfill`) join it within that time.
    """

    def __init__(self, size: int, *, max_age: float = 60.0) -> None:
        if size < 1:
            raise ValueError(f"window size must be at least 1, got {size}")
        self.size = size
        self.max_age = max_age
        self._frames: dict[WindowKey, pd.DataFrame] = {}
        self._seeded: dict[WindowKey, float] = {}

    def get(self, key: WindowKey) -> pd.DataFrame | None:
        """The window, or None when it must be (re-)read from the database."""
        seeded = self._seeded.get(key)
        if seeded is None or time.monotonic() - seeded > self.max_age:
            return None
        return self._frames.get(key)

    def seed(self, key: WindowKey, bars: pd.DataFrame) -> None:
        """A window just read from the database."""
        self._frames[key] = bars.iloc[-self.size :]
        self._seeded[key] = time.monotonic()

    def put(self, key: WindowKey, bars: pd.DataFrame) -> None:
        """The window after a stored batch (its seed time is kept)."""
        if key in self._seeded:
            self._frames[key] = bars.iloc[-self.size :]

    def ensure_size(self, size: int) -> None:
        """Grow the windows (a model with a longer lookback was loaded); they are re-read."""
        if size > self.size:
            self.size = size
            self.invalidate()

    def invalidate(self, keys: Sequence[WindowKey] | None = None) -> None:
        """Forget windows (all by default): the next batch re-reads them from the database."""
        for key in list(self._seeded) if keys is None else keys:
            self._frames.pop(key, None)
            self._seeded.pop(key, None)

    def __len__(self) -> int:
        return len(self._frames)
