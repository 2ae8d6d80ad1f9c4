"""Everything one refresh of the dashboard shows, loaded in one call (run it off the event loop)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from panel_app.compare import live_vs_backtest
from panel_app.live_period import LIVE_PERIOD_COLUMNS, LivePeriod, SamePeriod
from panel_app.queries import DashboardQueries
from panel_app.series import EquityPair, equity_pair, with_live_period


@dataclass(frozen=True, slots=True)
class SignalFilter:
    symbols: tuple[str, ...] = ()
    model_keys: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    page: int = 0  # of SIGNAL_LIMIT signals, newest first


@dataclass(frozen=True, slots=True)
class DashboardData:
    window: str
    overview: pd.DataFrame
    equity: list[EquityPair]
    signals: pd.DataFrame
    signal_choices: dict[str, list[str]]
    versions: pd.DataFrame
    events: pd.DataFrame
    runs: pd.DataFrame
    latencies: pd.DataFrame
    champions: pd.DataFrame = field(repr=False)
    same_period: SamePeriod = field(
        default_factory=lambda: SamePeriod(pd.DataFrame(columns=list(LIVE_PERIOD_COLUMNS)))
    )


def load(
    queries: DashboardQueries,
    *,
    window: str,
    drift_margin: float,
    signal_filter: SignalFilter | None = None,
    live_period: LivePeriod | None = None,
) -> DashboardData:
    """Read every view's frames; blocking (database I/O), so the server calls it in a thread.
    `live_period`: computes the backtest on the live period (none without it)."""
    chosen = signal_filter or SignalFilter()
    champions = queries.champions()
    returns = queries.live_returns(window)
    same = (
        live_period.compute(queries, champions, window, drift_margin)
        if live_period is not None
        else SamePeriod(pd.DataFrame(columns=list(LIVE_PERIOD_COLUMNS)))
    )
    return DashboardData(
        window=window,
        overview=live_vs_backtest(
            champions, queries.live_metrics(window), drift_margin, same.metrics
        ),
        equity=[
            with_live_period(
                equity_pair(key, returns, queries.backtest_equity(key, version)),
                same.returns.get(key),
            )
            for key, version in sorted(
                zip(
                    champions["model_key"].astype(str),
                    champions["version"].astype(str),
                    strict=True,
                )
            )
        ],
        signals=queries.signals(
            symbols=chosen.symbols,
            model_keys=chosen.model_keys,
            actions=chosen.actions,
            page=chosen.page,
        ),
        signal_choices=queries.signal_choices(),
        versions=queries.model_versions(),
        events=queries.model_events(),
        runs=queries.pipeline_runs(),
        latencies=queries.latencies(window),
        champions=champions,
        same_period=same,
    )
