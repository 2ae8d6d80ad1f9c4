"""Bars in: CSV/Parquet files or folders and the Binance klines source, validated.

`load_bars(source, symbol)` returns the bars frame of docs/architecture.md: a UTC `DatetimeIndex`
named `time`, sorted and unique, float64 columns `open, high, low, close, volume`. Sources:

* `csv:PATH` (also `parquet:PATH`, `file:PATH`): a file, or a folder of `{SYMBOL}_*.csv` /
  `{SYMBOL}_*.parquet`;
* `binance:URL`, e.g. `binance:https://api.binance.com` (the last `bars` bars up to now), with
  optional query `?start=2024-01-01&end=2024-06-01&bars=5000`.

The aiohttp client is imported only when a `binance:` source is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pandas as pd

from bot.contracts import BadInput
from bot.contracts.settings import FILE_SCHEMES
from bot.data.files import read_path
from bot.data.validation import DEFAULT_MAX_BAD_FRACTION, AnomalyReport, validate_bars


@dataclass(frozen=True, slots=True)
class LoadedBars:
    bars: pd.DataFrame
    report: AnomalyReport


def _split_source(source: str) -> tuple[str, str]:
    scheme, sep, rest = source.partition(":")
    if not sep or not rest or scheme not in (*FILE_SCHEMES, "binance"):
        raise BadInput(
            f"unknown data source {source!r}; use csv:PATH (a file or a folder) or "
            "binance:URL (e.g. binance:https://api.binance.com)"
        )
    return scheme, rest


def _binance(url: str, symbol: str, interval: str) -> pd.DataFrame:
    from bot.data.binance import load_binance

    parts = urlsplit(url)
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    try:
        start = pd.Timestamp(query["start"], tz="UTC") if "start" in query else None
        end = pd.Timestamp(query["end"], tz="UTC") if "end" in query else None
        bars = int(query.get("bars", 5000))
    except ValueError as exc:
        raise BadInput(f"bad query in binance source {url!r}: {exc}") from exc
    return load_binance(base, symbol, interval=interval, start=start, end=end, bars=bars)


def read_raw(source: str, symbol: str, *, interval: str = "1D") -> pd.DataFrame:
    """Unvalidated rows of one symbol from a source (a `time` column and the bar columns)."""
    scheme, rest = _split_source(source)
    if scheme == "binance":
        return _binance(rest, symbol, interval)
    return read_path(Path(rest), symbol)


def load_bars_report(
    source: str,
    symbol: str,
    *,
    interval: str = "1D",
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
) -> LoadedBars:
    """Load and validate; the anomaly report says what was sorted, dropped and found missing."""
    raw = read_raw(source, symbol, interval=interval)
    bars, report = validate_bars(
        raw, symbol=symbol.upper(), interval=interval, max_bad_fraction=max_bad_fraction
    )
    return LoadedBars(bars=bars, report=report)


def load_bars(
    source: str,
    symbol: str,
    *,
    interval: str = "1D",
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
) -> pd.DataFrame:
    """The validated bars frame of `symbol` from `source` (see the module docstring)."""
    return load_bars_report(
        source, symbol, interval=interval, max_bad_fraction=max_bad_fraction
    ).bars


def anomaly_report(bars: pd.DataFrame, *, interval: str = "1D", symbol: str = "") -> AnomalyReport:
    """The report of the validation rule on an already loaded frame, without failing or dropping."""
    _, report = validate_bars(bars, symbol=symbol, interval=interval, max_bad_fraction=1.0)
    return report


__all__ = [
    "AnomalyReport",
    "LoadedBars",
    "anomaly_report",
    "load_bars",
    "load_bars_report",
    "read_raw",
]
