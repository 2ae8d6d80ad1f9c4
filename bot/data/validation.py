"""Bar validation: one documented rule, and a JSON-serialisable anomaly report.

The rule, applied in this order:

1. Rows whose time cannot be parsed, or lies outside the representable range or more than the
   future bound ahead of `now` (`bot.contracts.bars`: one interval plus 5 minutes), are bad.
   Times are UTC (naive times are taken as UTC).
2. Unsorted rows are sorted by time (reported as `unsorted`).
3. Exact duplicate times keep the last row (the latest correction); the others are dropped
   and counted.
4. Rows with a non-finite or non-positive price, `high < max(open, close)`,
   `low > min(open, close)`, or a negative or infinite volume are bad: dropped and reported.
   A missing volume (an empty cell, `NaN`, or no volume column at all, as for an index) is kept
   as missing: the features treat it as neutral.
5. If bad rows (1 and 4) exceed `max_bad_fraction` of the input (default 5 %), the load fails
   with `BadInput`: that data needs repair, not silent cleaning.
6. Gaps are reported, never filled: for intraday and weekly bars a step longer than the interval;
   for daily bars more than one missing weekday between two bars (weekends and single-day
   holidays are not gaps).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from bot.contracts import BadInput, utcnow
from bot.contracts.bars import EARLIEST, LATEST, BarTimeBounds
from bot.core import parse_interval

PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = (*PRICE_COLUMNS, "volume")
MAX_EXAMPLES = 5
DEFAULT_MAX_BAD_FRACTION = 0.05
FUTURE_BOUNDS = BarTimeBounds(max_age=timedelta(0))  # loaders: only the future bound applies


@dataclass(slots=True)
class AnomalyReport:
    """What validation found and did. `to_dict()` / `to_json()` for storage with a pipeline run."""

    symbol: str
    rows_in: int = 0
    rows_out: int = 0
    unsorted: bool = False
    duplicates: int = 0
    bad_rows: dict[str, int] = field(default_factory=dict)
    gaps: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def n_bad(self) -> int:
        return sum(self.bad_rows.values())

    @property
    def clean(self) -> bool:
        return not (self.unsorted or self.duplicates or self.n_bad or self.gaps)

    def note(self, kind: str, examples: list[str]) -> None:
        if examples:
            self.examples.setdefault(kind, []).extend(examples[:MAX_EXAMPLES])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"n_bad": self.n_bad, "clean": self.clean}

    as_dict = to_dict

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def summary(self) -> str:
        parts = [f"{self.symbol}: {self.rows_out} of {self.rows_in} rows kept"]
        parts += [f"{count} {reason}" for reason, count in sorted(self.bad_rows.items())]
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicate times (kept the last)")
        if self.gaps:
            parts.append(f"{self.gaps} gaps")
        return ", ".join(parts)


def _times(values: pd.Index | pd.Series) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True, errors="coerce"))


def _examples(times: pd.Index, mask: np.ndarray[Any, np.dtype[np.bool_]]) -> list[str]:
    return [str(t) for t in times[mask][:MAX_EXAMPLES]]


def _row_problems(frame: pd.DataFrame) -> dict[str, np.ndarray[Any, np.dtype[np.bool_]]]:
    prices = frame[list(PRICE_COLUMNS)].to_numpy(dtype=float)
    o, h, lo, c = prices.T
    volume = frame["volume"].to_numpy(dtype=float)
    bad_price = ~np.isfinite(prices).all(axis=1) | (prices <= 0).any(axis=1)
    with np.errstate(invalid="ignore"):
        return {
            "non-finite or non-positive price": bad_price,
            "high below max(open, close)": ~bad_price & (h < np.maximum(o, c)),
            "low above min(open, close)": ~bad_price & (lo > np.minimum(o, c)),
            "negative or infinite volume": np.isinf(volume) | (volume < 0),
        }


def _gap_mask(index: pd.DatetimeIndex, interval: str) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """True at each bar that follows a gap."""
    if len(index) < 2:  # noqa: PLR2004 - a gap needs two bars
        return np.zeros(len(index), dtype=bool)
    step = parse_interval(interval)
    if pd.Timedelta(days=1) <= step < pd.Timedelta(weeks=1):
        days = index.tz_convert("UTC").normalize().tz_localize(None).to_numpy().astype("M8[D]")
        missing = np.busday_count(days[:-1], days[1:]) - 1
        return np.concatenate(([False], missing > 1))
    return np.concatenate(([False], np.diff(index.asi8) > step.value))


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    if "volume" not in frame.columns:  # symbols without volume (indices)
        frame = frame.assign(volume=np.nan)
    missing = [name for name in BAR_COLUMNS if name not in frame.columns]
    if missing:
        raise BadInput(
            f"bars are missing columns {missing}; expected time, {', '.join(BAR_COLUMNS)}"
        )
    numeric: pd.DataFrame = frame[list(BAR_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    return numeric.astype(float)


def validate_bars(
    raw: pd.DataFrame,
    *,
    symbol: str,
    interval: str = "1D",
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
    now: datetime | None = None,
) -> tuple[pd.DataFrame, AnomalyReport]:
    """Apply the rule of the module docstring to a frame with a time index or `time` column."""
    frame = raw.set_index("time") if "time" in raw.columns else raw
    report = AnomalyReport(symbol=symbol, rows_in=len(frame))
    frame = _numeric(frame)
    frame.index = _times(frame.index)
    newest = pd.Timestamp(min(LATEST, (now or utcnow()) + FUTURE_BOUNDS.future_skew(interval)))
    with np.errstate(invalid="ignore"):
        bad_time = np.asarray(
            frame.index.isna() | (frame.index < pd.Timestamp(EARLIEST)) | (frame.index > newest)
        )
    report.note(
        "unparseable or out-of-range time",
        [
            str(raw.index[i]) if "time" not in raw.columns else str(raw["time"].iloc[i])
            for i in np.flatnonzero(bad_time)[:MAX_EXAMPLES]
        ],
    )
    frame = frame[~bad_time]
    if not frame.index.is_monotonic_increasing:
        report.unsorted = True
        frame = frame.sort_index(kind="stable")
    duplicated = np.asarray(frame.index.duplicated(keep="last"))
    report.duplicates = int(duplicated.sum())
    report.note("duplicate time", _examples(frame.index, duplicated))
    frame = frame[~duplicated]
    problems = _row_problems(frame)
    bad = np.zeros(len(frame), dtype=bool)
    counts = {"unparseable or out-of-range time": int(bad_time.sum())} if bad_time.any() else {}
    for reason, mask in problems.items():
        if mask.any():
            counts[reason] = int(mask.sum())
            report.note(reason, _examples(frame.index, mask))
        bad |= mask
    report.bad_rows = counts
    _fail_when_too_bad(report, int(bad.sum() + bad_time.sum()), max_bad_fraction)
    frame = frame[~bad]
    gaps = _gap_mask(pd.DatetimeIndex(frame.index), interval)
    report.gaps = int(gaps.sum())
    report.note("gap before", _examples(frame.index, gaps))
    frame.index.name = "time"
    report.rows_out = len(frame)
    return frame, report


def _fail_when_too_bad(report: AnomalyReport, n_bad: int, max_bad_fraction: float) -> None:
    if report.rows_in == 0:
        raise BadInput(f"no bars for {report.symbol}: the source is empty")
    if n_bad > max_bad_fraction * report.rows_in:
        raise BadInput(
            f"{n_bad} of {report.rows_in} bars of {report.symbol} are invalid "
            f"({', '.join(f'{c} {r}' for r, c in report.bad_rows.items())}), more than the "
            f"allowed {max_bad_fraction:.0%}; repair the data (examples: {report.examples})"
        )
