"""Per-symbol rolling bar windows, the kinds of bars, and the history an alert is predicted on.

A window holds the last `size` bars of one (symbol, interval) as numpy arrays (`BarArrays`: times
and OHLCV; no pandas on the batch path), seeded from the `bars` table the first time the symbol is
seen (so the first alert after a start already has its history), and re-read from the database,
which is the truth, after a rebalance, an error, or a minute.

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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


@dataclass(frozen=True, slots=True)
class BarArrays:
    """A window as arrays: UTC nanoseconds (sorted, unique) and `(n, 5)` values (`BAR_FIELDS`)."""

    times: NDArray[np.int64]
    ohlcv: NDArray[np.float64]

    @classmethod
    def of(cls, frame: pd.DataFrame) -> BarArrays:
        if not len(frame):
            return cls(np.empty(0, dtype=np.int64), np.empty((0, len(BAR_FIELDS))))
        times = pd.DatetimeIndex(frame.index).as_unit("ns").asi8
        if tuple(frame.columns) != BAR_FIELDS:
            frame = frame.loc[:, list(BAR_FIELDS)]
        return cls(times, frame.to_numpy(dtype=np.float64))

    def frame(self) -> pd.DataFrame:
        return _frame(self.times, self.ohlcv)

    @property
    def index(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.times, dtype=_UTC_NS, name="time")

    def tail(self, size: int) -> BarArrays:
        return BarArrays(self.times[-size:], self.ohlcv[-size:])

    def __len__(self) -> int:
        return len(self.times)


def apply_run_arrays(bars: BarArrays, alerts: Sequence[Alert]) -> tuple[BarArrays, list[int]]:
    """`bars` with a run's bars (strictly increasing times) upserted, and their positions."""
    times, values = _nanoseconds(alerts), _values(alerts)
    if not len(bars) or times[0] > bars.times[-1]:  # the live case: appended
        merged = BarArrays(
            np.concatenate([bars.times, times]), np.concatenate([bars.ohlcv, values])
        )
        return merged, list(range(len(bars), len(merged)))
    kept = ~np.isin(bars.times, times)
    order = np.argsort(np.concatenate([bars.times[kept], times]), kind="stable")
    merged = BarArrays(
        np.concatenate([bars.times[kept], times])[order],
        np.concatenate([bars.ohlcv[kept], values])[order],
    )
    return merged, np.searchsorted(merged.times, times).tolist()


def classify(window: BarArrays, alerts: Sequence[Alert]) -> tuple[BarKind, ...]:
    """The kind of each alert's bar against the window and the alerts before it."""
    times = _nanoseconds(alerts)
    if (
        len(window)
        and len(times)
        and times[0] > window.times[-1]
        and bool((np.diff(times) > 0).all())
    ):
        return (BarKind.NEW,) * len(times)  # the live case, without a set of the window
    known = set(window.times.tolist())
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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def covered_after(window: BarArrays, size: int) -> datetime | None:
    """Alerts for bars after this time find their `size` bars of history in the window; for a
    bar at or before it, some must be read from the database. None: the window lacks nothing
    (shorter than `size`, it holds the whole stored history). A `datetime`, compared with each
    alert's: a `pd.Timestamp` per group and per alert was a tenth of a batch's event-loop time."""
    if len(window) < size or size < 2:  # noqa: PLR2004 - a bar and one before it
        return None
    return _EPOCH + timedelta(microseconds=int(window.times[size - 2]) // 1000)


def with_history(window: BarArrays, older: pd.DataFrame) -> BarArrays:
    """Stored bars read for old alerts joined with the window (the window's newer bars kept)."""
    if not len(older):
        return window
    stored = BarArrays.of(older)
    newer = window.times > stored.times[-1]
    if not newer.any():
        return stored
    return BarArrays(
        np.concatenate([stored.times, window.times[newer]]),
        np.concatenate([stored.ohlcv, window.ohlcv[newer]]),
    )


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
        self._frames: dict[WindowKey, BarArrays] = {}
        self._seeded: dict[WindowKey, float] = {}

    def get(self, key: WindowKey) -> BarArrays | None:
        """The window, or None when it must be (re-)read from the database."""
        seeded = self._seeded.get(key)
        if seeded is None or time.monotonic() - seeded > self.max_age:
            return None
        return self._frames.get(key)

    def seed(self, key: WindowKey, bars: pd.DataFrame) -> BarArrays:
        """A window just read from the database; what it keeps of it."""
        window = BarArrays.of(bars).tail(self.size)
        self._frames[key] = window
        self._seeded[key] = time.monotonic()
        return window

    def put(self, key: WindowKey, bars: BarArrays) -> None:
        """The window after a stored batch (its seed time is kept)."""
        if key in self._seeded:
            self._frames[key] = bars.tail(self.size)

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
