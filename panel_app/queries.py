"""What the dashboard reads: read-only, cached, bounded queries that return DataFrames.

The dashboard never writes and never recomputes a model: it reads what the pipeline (model versions,
events, runs, backtest equity) and the consumers (signals, outcomes, live-metric snapshots) store.
Every query has a row limit; results are cached for a few seconds and shared by all sessions, so a
room full of browsers costs the database one query per refresh period.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from cachetools import TTLCache
from sqlalchemy import Engine, Executable, Select, String, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.contracts import BadInput, TransientError, utcnow
from bot.core.live_aggregates import Segment, bucket_name, window_days_start
from storage.bars import BAR_FIELDS
from storage.db import SQLITE_BUSY_TIMEOUT_MS, sync_url
from storage.live_aggregates import day_buckets_statement
from storage.signals import latest_live_metrics_statement
from storage.tables import (
    BacktestEquity,
    Bar,
    ModelEventRow,
    ModelVersion,
    Outcome,
    PipelineRun,
    SignalRow,
)

SIGNAL_LIMIT = 500
VERSION_LIMIT = 500
EVENT_LIMIT = 200
RUN_LIMIT = 100
EQUITY_LIMIT = 20_000
LIVE_ROW_LIMIT = 20_000  # resolved signals read for the backtest on the live period
BAR_LIMIT = 25_000  # the newest bars of a symbol: the live rows' bars and their feature history
LATENCY_LIMIT = 10_000  # the newest signals of the window: enough for 120 buckets
# distinct values of an indexed column, one seek each (the loose index scan SQL lacks)
DISTINCT_VALUES = """
WITH RECURSIVE
  s(value) AS (SELECT min(symbol) FROM signals
               UNION ALL SELECT (SELECT min(symbol) FROM signals WHERE symbol > s.value)
               FROM s WHERE s.value IS NOT NULL),
  m(value) AS (SELECT min(model_key) FROM signals
               UNION ALL SELECT (SELECT min(model_key) FROM signals WHERE model_key > m.value)
               FROM m WHERE m.value IS NOT NULL)
SELECT 's' AS kind, value FROM s WHERE value IS NOT NULL
UNION ALL SELECT 'm' AS kind, value FROM m WHERE value IS NOT NULL
"""
WINDOWS: dict[str, timedelta | None] = {
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}


def _read_only_sqlite(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def read_only_engine(database_url: str) -> Engine:
    """A synchronous engine that refuses writes (SQLite `query_only`, PostgreSQL read-only)."""
    url = sync_url(database_url)
    backend = make_url(url).get_backend_name()
    if backend == "postgresql":
        return create_engine(
            url,
            pool_pre_ping=True,
            connect_args={"options": "-c default_transaction_read_only=on"},
        )
    engine = create_engine(url, pool_pre_ping=True)
    if backend == "sqlite":
        event.listen(engine, "connect", _read_only_sqlite)
    return engine


def window_start(window: str, now: datetime | None = None) -> datetime | None:
    """The start of a live window (`7d`, `30d`: the UTC midnight of the day 7 or 30 days ago, as
    live metrics count them) or None for `all`."""
    if window not in WINDOWS:
        raise BadInput(f"unknown window {window!r}; use one of {', '.join(WINDOWS)}")
    span = WINDOWS[window]
    return None if span is None else window_days_start(now or utcnow(), span)


def _frame(engine: Engine, statement: Executable) -> pd.DataFrame:
    try:
        with engine.connect() as connection:
            result = connection.execute(statement)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    except SQLAlchemyError as exc:
        url = engine.url.render_as_string(hide_password=True)
        cause = getattr(exc, "orig", None) or exc
        raise TransientError(
            f"cannot read the database at {url} ({type(cause).__name__}: {cause}); "
            "run `itff db upgrade` if its tables are missing"
        ) from exc


def _daily_returns(engine: Engine, statement: Select[Any]) -> pd.DataFrame:
    rows = _frame(engine, statement)
    segments = [Segment.from_json(data) for data in rows.get("segment", [])]
    return pd.DataFrame(
        {
            "model_key": rows.get("model_key", pd.Series(dtype=str)).astype(str).tolist(),
            "bar_time": pd.to_datetime([s.last_bar for s in segments], utc=True),
            "strategy_return": [s.gross_growth - 1.0 for s in segments],
        }
    )


def _utc(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for column in columns:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


class DashboardQueries:
    """The dashboard's data access: thread-safe, shared by every browser session."""

    def __init__(self, engine: Engine, *, ttl_seconds: float = 5.0) -> None:
        self.engine = engine
        self._cache: TTLCache[Hashable, pd.DataFrame] = TTLCache(maxsize=256, ttl=ttl_seconds)
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, database_url: str, *, ttl_seconds: float = 5.0) -> DashboardQueries:
        return cls(read_only_engine(database_url), ttl_seconds=ttl_seconds)

    def close(self) -> None:
        self.engine.dispose()

    def _cached(self, key: Hashable, load: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        with self._lock:
            cached = self._cache.get(key)
        if cached is None:
            cached = load()
            with self._lock:
                self._cache[key] = cached
        return cached.copy()

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def model_versions(self, *, status: str | None = None) -> pd.DataFrame:
        """Model versions, newest first, optionally only those of one status."""
        statement = select(ModelVersion.__table__).order_by(
            ModelVersion.model_key, ModelVersion.created_at.desc()
        )
        if status is not None:
            statement = statement.where(ModelVersion.status == status)
        statement = statement.limit(VERSION_LIMIT)
        return self._cached(
            ("model_versions", status),
            lambda: _utc(
                _frame(self.engine, statement),
                "created_at",
                "promoted_at",
                "train_start",
                "train_end",
                "last_verified_at",
            ),
        )

    def champions(self) -> pd.DataFrame:
        return self.model_versions(status="champion")

    def live_metrics(self, window: str) -> pd.DataFrame:
        """The latest live-metric snapshot of each model for `window` (7d, 30d or all)."""
        window_start(window)
        statement = latest_live_metrics_statement(window).limit(VERSION_LIMIT)
        return self._cached(
            ("live_metrics", window),
            lambda: _utc(_frame(self.engine, statement), "computed_at").drop_duplicates(
                "model_key", keep="last"
            ),
        )

    def live_returns(self, window: str) -> pd.DataFrame:
        """Live returns of each model per UTC day of bars in `window` (as live metrics count
        them), oldest first: one row per model and day, read from the running aggregates, never
        from every outcome. Compounding them gives each day's closing equity.

        Columns `model_key, bar_time` (the day's last bar), `strategy_return` (the day's
        compounded return).
        """
        since = window_start(window)
        statement = day_buckets_statement(None if since is None else bucket_name(since))
        return self._cached(
            ("live_returns", window), lambda: _daily_returns(self.engine, statement)
        )

    def live_rows(self, window: str) -> pd.DataFrame:
        """Resolved signals whose bar is in `window`, with what the live metrics read
        (`bot.core.LIVE_COLUMNS`) and `model_version`, `symbol`; by model and bar."""
        statement = select(
            SignalRow.model_key, SignalRow.target, SignalRow.interval, SignalRow.bar_time,
            SignalRow.prediction, SignalRow.probability, SignalRow.action,
            Outcome.realised_return, Outcome.strategy_return, SignalRow.model_version,
            SignalRow.symbol,
        ).join(Outcome, Outcome.signal_id == SignalRow.signal_id)  # fmt: skip
        since = window_start(window)
        if since is not None:
            statement = statement.where(SignalRow.bar_time >= since)
        statement = statement.order_by(SignalRow.bar_time.desc()).limit(LIVE_ROW_LIMIT)
        return self._cached(
            ("live_rows", window),
            lambda: (
                _utc(_frame(self.engine, statement), "bar_time")
                .sort_values(["model_key", "bar_time"])
                .reset_index(drop=True)
            ),
        )

    def bars(self, symbol: str, interval: str) -> pd.DataFrame:
        """The newest `BAR_LIMIT` stored bars of a symbol, oldest first, indexed by time."""
        statement = (
            select(Bar.time, *(getattr(Bar, name) for name in BAR_FIELDS))
            .where(Bar.symbol == symbol, Bar.interval == interval)
            .order_by(Bar.time.desc())
            .limit(BAR_LIMIT)
        )

        def load() -> pd.DataFrame:
            frame = _utc(_frame(self.engine, statement), "time").sort_values("time")
            return frame.set_index("time").astype("float64")

        return self._cached(("bars", symbol, interval), load)

    def backtest_equity(self, model_key: str, version: str) -> pd.DataFrame:
        """The out-of-sample backtest curve of one model version, oldest first."""
        statement = (
            select(BacktestEquity.time, BacktestEquity.strategy_return, BacktestEquity.equity)
            .where(BacktestEquity.model_key == model_key, BacktestEquity.version == version)
            .order_by(BacktestEquity.time.desc())
            .limit(EQUITY_LIMIT)
        )
        return self._cached(
            ("backtest_equity", model_key, version),
            lambda: (
                _utc(_frame(self.engine, statement), "time")
                .sort_values("time")
                .reset_index(drop=True)
            ),
        )

    def signals(
        self,
        *,
        symbols: tuple[str, ...] = (),
        model_keys: tuple[str, ...] = (),
        actions: tuple[str, ...] = (),
        limit: int = SIGNAL_LIMIT,
        page: int = 0,
    ) -> pd.DataFrame:
        """The latest signals, newest first, filtered by symbol, model and action: page `page`
        (from 0) of `limit` rows (at most `SIGNAL_LIMIT`)."""
        table = SignalRow.__table__
        statement = select(table).order_by(table.c.emitted_at.desc())
        if symbols:
            statement = statement.where(table.c.symbol.in_(symbols))
        if model_keys:
            statement = statement.where(table.c.model_key.in_(model_keys))
        if actions:
            statement = statement.where(table.c.action.in_(actions))
        size = min(limit, SIGNAL_LIMIT)
        statement = statement.limit(size).offset(max(page, 0) * size)
        return self._cached(
            ("signals", symbols, model_keys, actions, limit, page),
            lambda: _utc(_frame(self.engine, statement), "bar_time", "emitted_at"),
        )

    def signal_choices(self) -> dict[str, list[str]]:
        """The symbols and model keys that have signals, for the filter widgets: one index seek
        per distinct value (a recursive scan over `ix_signals_symbol_bar` and
        `ix_signals_model_bar`), not a pass over every signal."""
        statement = text(DISTINCT_VALUES).columns(kind=String, value=String)
        frame = self._cached("signal_choices", lambda: _frame(self.engine, statement))
        values = {kind: sorted(frame.loc[frame["kind"] == kind, "value"]) for kind in ("s", "m")}
        return {"symbols": values["s"][:VERSION_LIMIT], "model_keys": values["m"][:VERSION_LIMIT]}

    def model_events(self) -> pd.DataFrame:
        """The promotion history, newest first."""
        statement = (
            select(ModelEventRow.__table__)
            .order_by(ModelEventRow.at.desc(), ModelEventRow.id.desc())
            .limit(EVENT_LIMIT)
        )
        return self._cached("model_events", lambda: _utc(_frame(self.engine, statement), "at"))

    def pipeline_runs(self) -> pd.DataFrame:
        """Recent pipeline runs, newest first."""
        statement = (
            select(PipelineRun.__table__).order_by(PipelineRun.started_at.desc()).limit(RUN_LIMIT)
        )
        return self._cached(
            "pipeline_runs",
            lambda: _utc(_frame(self.engine, statement), "started_at", "finished_at"),
        )

    def latencies(self, window: str) -> pd.DataFrame:
        """`emitted_at, latency_ms` of the signals emitted in `window`, oldest first."""
        statement = select(SignalRow.emitted_at, SignalRow.latency_ms)
        since = window_start(window)
        if since is not None:
            statement = statement.where(SignalRow.emitted_at >= since)
        statement = statement.order_by(SignalRow.emitted_at.desc()).limit(LATENCY_LIMIT)
        return self._cached(
            ("latencies", window),
            lambda: (
                _utc(_frame(self.engine, statement), "emitted_at")
                .sort_values("emitted_at")
                .reset_index(drop=True)
            ),
        )
