"""Bar intervals: `1D`, `4h`, `15m`, `1W`, and TradingView's `D`, `W`, `60`, `240`."""

from __future__ import annotations

import re
from typing import Literal

import pandas as pd

from bot.contracts import BadInput

Unit = Literal["s", "min", "h", "D", "W"]

_PATTERN = re.compile(r"^\s*(\d*)\s*([smhdwSMHDW]?)\s*$")
_UNITS: dict[str, Unit] = {
    "s": "s",
    "S": "s",
    "m": "min",
    "h": "h",
    "H": "h",
    "d": "D",
    "D": "D",
    "w": "W",
    "W": "W",
}
TRADING_DAYS_PER_YEAR = 252
WEEKS_PER_YEAR = 52
CRYPTO_MINUTES_PER_YEAR = 365 * 24 * 60


def parse_interval(interval: str) -> pd.Timedelta:
    """The length of one bar. A bare number is minutes (TradingView); `M` alone is not allowed."""
    match = _PATTERN.match(interval)
    if not match or (not match.group(1) and not match.group(2)) or match.group(2) == "M":
        raise BadInput(
            f"unknown interval {interval!r}; use a number and a unit such as 1D, 4h, 15m, 1W "
            "(or TradingView's D, W, 60)"
        )
    count = int(match.group(1) or 1)
    unit = _UNITS[match.group(2) or "m"]
    if count < 1:
        raise BadInput(f"interval {interval!r} must be at least one unit long")
    return pd.Timedelta(count, unit=unit)


def is_daily_or_longer(interval: str) -> bool:
    return parse_interval(interval) >= pd.Timedelta(days=1)


def periods_per_year(interval: str) -> float:
    """Bars per year used to annualise returns.

    Daily bars are exchange sessions (252 per year), weekly bars 52 per year; intraday bars are
    assumed to trade around the clock (crypto, 365 x 24 h).
    """
    length = parse_interval(interval)
    if length >= pd.Timedelta(weeks=1):
        return WEEKS_PER_YEAR / (length / pd.Timedelta(weeks=1))
    if length >= pd.Timedelta(days=1):
        return TRADING_DAYS_PER_YEAR / (length / pd.Timedelta(days=1))
    return CRYPTO_MINUTES_PER_YEAR / (length / pd.Timedelta(minutes=1))


def binance_interval(interval: str) -> str:
    """Binance's spelling of an interval (`1d`, `4h`, `15m`, `1w`)."""
    length = parse_interval(interval)
    codes: tuple[tuple[Unit, str], ...] = (
        ("W", "w"),
        ("D", "d"),
        ("h", "h"),
        ("min", "m"),
        ("s", "s"),
    )
    for unit, code in codes:
        step = pd.Timedelta(1, unit=unit)
        if length % step == pd.Timedelta(0):
            return f"{length // step}{code}"
    raise BadInput(f"interval {interval!r} has no Binance equivalent")


__all__ = [
    "binance_interval",
    "is_daily_or_longer",
    "parse_interval",
    "periods_per_year",
]
