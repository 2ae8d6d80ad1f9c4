"""Per-symbol rolling bar windows and the rule for new, duplicate and late bars.

A window holds the last `size` bars of one (symbol, interval), seeded from the `bars` table the
first time the symbol is seen (so the first alert after a start already has its history), and
re-read from the database, which is the truth, after a rebalance, an error, or a minute.

Rule for each bar of a batch, in offset order (the alerts of one symbol share one partition):

- **new**: later than every bar of the window: appended; it yields signals.
- **duplicate**: the same time as a bar of the window: replaces it; no new signal.
- **late**: older than the window's last bar but not in it: inserted; no signal.

Every bar is upserted into `bars` whatever its kind, so a restart loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import pandas as pd

from bot.data.intervals import parse_interval
from bot.errors import BadInput
from bot.schemas import Alert
from storage.bars import BAR_FIELDS

WindowKey = tuple[str, str]
_UNITS: tuple[tuple[Literal["W", "D", "h", "min", "s"], str], ...] = (
    ("W", "W"),
    ("D", "D"),
    ("h", "h"),
    ("min", "m"),
    ("s", "s"),
)


def canonical_interval(interval: str) -> str:
    """`D`, `1d`, `1D` -> `1D`; `60` -> `1h`; an unknown spelling is kept as it is."""
    try:
        length = parse_interval(interval)
    except BadInput:
        return interval
    for unit, code in _UNITS:
        step = pd.Timedelta(1, unit=unit)
        if length % step == pd.Timedelta(0):
            return f"{length // step}{code}"
    return interval


class BarKind(StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"
    LATE = "late"


@dataclass(frozen=True, slots=True)
class MergedWindow:
    """The window with a batch's bars merged in, and where each new bar landed."""

    bars: pd.DataFrame
    kinds: tuple[BarKind, ...]  # one per alert, in the order given
    positions: tuple[int, ...]  # row of each alert's bar in `bars` (meaningful for NEW)


def alert_bars(alerts: Sequence[Alert]) -> pd.DataFrame:
    """The alerts' bars as a bars frame (not deduplicated, in the order given)."""
    index = pd.DatetimeIndex([alert.bar_time for alert in alerts], name="time").tz_convert("UTC")
    data = {name: [float(getattr(alert, name)) for alert in alerts] for name in BAR_FIELDS}
    return pd.DataFrame(data, index=index, columns=list(BAR_FIELDS), dtype="float64")


def classify(window: pd.DataFrame, alerts: Sequence[Alert]) -> tuple[BarKind, ...]:
    """The kind of each alert's bar against the window and the alerts before it."""
    known = set(window.index)
    last = window.index[-1] if len(window) else None
    kinds: list[BarKind] = []
    for alert in alerts:
        time = pd.Timestamp(alert.bar_time)
        if time in known:
            kinds.append(BarKind.DUPLICATE)
        elif last is None or time > last:
            kinds.append(BarKind.NEW)
            last = time
        else:
            kinds.append(BarKind.LATE)
        known.add(time)
    return tuple(kinds)


def merge(window: pd.DataFrame, alerts: Sequence[Alert]) -> MergedWindow:
    """Merge the alerts' bars into the window (a later bar for a time replaces the earlier)."""
    kinds = classify(window, alerts)
    incoming = alert_bars(alerts)
    combined = pd.concat([window, incoming]) if len(window) else incoming
    combined = combined[~combined.index.duplicated(keep="last")].sort_index()
    positions = tuple(int(i) for i in combined.index.get_indexer(incoming.index))
    return MergedWindow(bars=combined, kinds=kinds, positions=positions)


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
