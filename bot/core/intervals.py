"""Bar intervals: `1D`, `4h`, `15m`, `1W`, and TradingView's `D`, `W`, `60`, `240`."""

from __future__ import annotations

import pandas as pd

from bot.contracts import BadInput
from bot.contracts.bars import interval_length

TRADING_DAYS_PER_YEAR = 252
WEEKS_PER_YEAR = 52
CRYPTO_MINUTES_PER_YEAR = 365 * 24 * 60


def parse_interval(interval: str) -> pd.Timedelta:
    """The length of one bar (`bot.contracts.bars.interval_length`, the one parser)."""
    try:
        return pd.Timedelta(interval_length(interval))
    except ValueError as exc:
        raise BadInput(str(exc)) from exc


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
    codes = (("1W", "w"), ("1D", "d"), ("1h", "h"), ("1min", "m"), ("1s", "s"))
    for unit, code in codes:
        step = pd.Timedelta(unit)
        if length % step == pd.Timedelta(0):
            return f"{length // step}{code}"
    raise BadInput(f"interval {interval!r} has no Binance equivalent")


__all__ = [
    "binance_interval",
    "is_daily_or_longer",
    "parse_interval",
    "periods_per_year",
]
