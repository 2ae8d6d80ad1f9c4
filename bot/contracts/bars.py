"""What a bar's time may be: the one place the receiver, `/predict`, the consumer and the loaders
ask.

Two layers of bounds:

- **Representable** (every timestamp on the wire, no setting): from `EARLIEST` to `LATEST`, well
  inside pandas' nanosecond range (1677-09-21 .. 2262-04-11), so that no accepted time can
  overflow a conversion later. Epoch numbers are read as seconds, or milliseconds above 10^11,
  and must be finite; anything else is a validation error, never an `OverflowError`.
- **Plausible** (`BarTimeBounds`, from the settings): a bar may be at most `max_future_skew`
  ahead of the clock it is checked against (default: one interval plus 5 minutes, since
  TradingView stamps a bar with its open time and fires at its close) and no older than
  `max_age`. The receiver and `/predict` check against their own clock; the consumer against the
  alert's `received_at`, so a backlog consumed late is judged as it was received; the loaders
  (history by nature) apply the future bound only.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

EARLIEST = datetime(1800, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
MS_CUTOFF = 1e11  # epoch numbers above this are milliseconds (1e11 s is the year 5138)
MAX_EPOCH_DIGITS = 20
SKEW_MARGIN = timedelta(minutes=5)
# a bar longer than a year is no bar; the bound keeps every sum of times and intervals in range
MAX_INTERVAL = timedelta(days=366)

_INTERVAL = re.compile(r"^\s*(\d{0,6})\s*([smhdwSHDW]?)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@functools.lru_cache(maxsize=1024)  # a handful of spellings; every alert asks twice
def interval_length(interval: str) -> timedelta:
    """The length of one bar: `1D`, `4h`, `15m`, `1W`, TradingView's `D`, `W` and bare minutes
    (`60`, `240`). `ValueError` naming the accepted forms otherwise (`M`, months, is not a fixed
    length and is not accepted)."""
    match = _INTERVAL.match(interval)
    if not match or not (match.group(1) or match.group(2)):
        raise ValueError(
            f"unknown interval {interval!r}; use a number and a unit such as 1D, 4h, 15m, 1W "
            "(or TradingView's D, W, 60)"
        )
    count = int(match.group(1) or 1)
    if count < 1:
        raise ValueError(f"interval {interval!r} must be at least one unit long")
    length = timedelta(seconds=count * _UNIT_SECONDS[(match.group(2) or "m").lower()])
    if length > MAX_INTERVAL:
        raise ValueError(f"interval {interval!r} is longer than {MAX_INTERVAL.days} days")
    return length


_CANONICAL = (("W", 7 * 86400), ("D", 86400), ("h", 3600), ("m", 60), ("s", 1))


@functools.lru_cache(maxsize=1024)
def canonical_interval(interval: str) -> str:
    """`D`, `1d`, `1D` -> `1D`; `60` -> `1h`; an unknown spelling is kept as it is. Bars are
    stored and windowed under this spelling."""
    try:
        seconds = int(interval_length(interval).total_seconds())
    except ValueError:
        return interval
    code, step = next((code, step) for code, step in _CANONICAL if seconds % step == 0)
    return f"{seconds // step}{code}"


def _range_text() -> str:
    return f"{EARLIEST.date().isoformat()} .. {LATEST.date().isoformat()}"


def representable(value: datetime) -> datetime:
    """`value` in UTC if it lies in `EARLIEST .. LATEST`; `ValueError` otherwise."""
    value = value.astimezone(UTC)
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"time {value.isoformat()} is outside {_range_text()}")
    return value


def from_epoch(value: float) -> datetime:
    """Epoch seconds, or milliseconds above 10^11, as a UTC datetime; `ValueError` for NaN,
    infinities and anything outside the representable range."""
    if not math.isfinite(value):
        raise ValueError("time must be a finite number of seconds or milliseconds since 1970")
    seconds = value / 1000 if abs(value) > MS_CUTOFF else value
    if not EARLIEST.timestamp() <= seconds < LATEST.timestamp():
        raise ValueError(
            f"time {value!r} (epoch seconds or milliseconds) is outside {_range_text()}"
        )
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True, slots=True)
class BarTimeBounds:
    """The plausible range of a bar's time relative to a clock (see the module docstring)."""

    max_age: timedelta
    max_future_skew: timedelta | None = None  # None: one interval plus SKEW_MARGIN

    def future_skew(self, interval: str) -> timedelta:
        if self.max_future_skew is not None:
            return self.max_future_skew
        return interval_length(interval) + SKEW_MARGIN

    def allowed(self, interval: str, now: datetime) -> tuple[datetime, datetime]:
        """The oldest and newest bar time accepted at `now`."""
        oldest = max(now - self.max_age, EARLIEST)
        newest = min(now + self.future_skew(interval), LATEST)
        return oldest, newest

    def violation(self, bar_time: datetime, interval: str, now: datetime) -> str | None:
        """Why `bar_time` is refused at `now`, naming the allowed range; None when accepted."""
        oldest, newest = self.allowed(interval, now)
        if oldest <= bar_time <= newest:
            return None
        side = "ahead of" if bar_time > newest else "older than allowed at"
        return (
            f"bar time {bar_time.isoformat()} is {side} {now.isoformat()}: the allowed range is "
            f"{oldest.isoformat()} .. {newest.isoformat()} (ITFF_MAX_BAR_AGE_DAYS, "
            "ITFF_MAX_FUTURE_SKEW_SECONDS); check the alert's clock and its time field"
        )

    def newest(self, interval: str, now: datetime) -> datetime:
        return self.allowed(interval, now)[1]
