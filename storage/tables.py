"""SQLAlchemy 2.0 typed tables; every change goes with an Alembic revision."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from bot.contracts import utcnow


class _SqliteDateTime(sqlite.DATETIME):
    """SQLite's DATETIME, written by `datetime.isoformat` (C) instead of SQLAlchemy's Python
    %-formatting: the same text ('2019-01-02 00:00:00.000000', pinned by a test), a fraction of
    the cost on the consumer's hot path (thousands of values per batch)."""

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], str | None]:  # noqa: ARG002
        def process(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat(" ", "microseconds")

        return process


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return _SqliteDateTime()  # type: ignore[no-untyped-call]  # as is: not adapted away
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        # SQLite keeps naive UTC text; PostgreSQL's timestamptz takes the aware instant (a naive
        # value would be read in the client's local time zone by asyncpg)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        # PostgreSQL answers in the session's TimeZone: the same instant, shown in UTC
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON}  # noqa: RUF012


class Bar(Base):
    __tablename__ = "bars"

    symbol: Mapped[str] = mapped_column(String(40), primary_key=True)
    interval: Mapped[str] = mapped_column(String(16), primary_key=True)
    time: Mapped[datetime] = mapped_column(primary_key=True)
    open: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    close: Mapped[float] = mapped_column(Float)
    volume: Mapped[float | None] = mapped_column(Float)  # NULL: the symbol has none (an index)
    source: Mapped[str] = mapped_column(String(32), default="unknown")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class BarRevision(Base):
    """The values a revision replaced: a stored bar is never overwritten silently."""

    __tablename__ = "bar_revisions"
    __table_args__ = (Index("ix_bar_revisions_bar", "symbol", "interval", "time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(40))
    interval: Mapped[str] = mapped_column(String(16))
    time: Mapped[datetime]
    open: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    close: Mapped[float] = mapped_column(Float)
    volume: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(32))  # who wrote the replaced values
    revised_by: Mapped[str] = mapped_column(String(32))  # the source of the revision
    revised_at: Mapped[datetime] = mapped_column(default=utcnow)


class SignalRow(Base):
    __tablename__ = "signals"
    __table_args__ = (
        UniqueConstraint("alert_id", "model_key", name="uq_signals_alert_model"),
        Index("ix_signals_model_bar", "model_key", "bar_time"),
        Index("ix_signals_symbol_bar", "symbol", "bar_time"),
        Index("ix_signals_emitted", "emitted_at"),
    )

    signal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    alert_id: Mapped[str] = mapped_column(String(128))
    symbol: Mapped[str] = mapped_column(String(40))
    interval: Mapped[str] = mapped_column(String(16))
    bar_time: Mapped[datetime]
    model_key: Mapped[str] = mapped_column(String(120))
    model_version: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(16))
    prediction: Mapped[float] = mapped_column(Float)
    probability: Mapped[float | None] = mapped_column(Float)
    action: Mapped[str] = mapped_column(String(8))
    ood: Mapped[bool] = mapped_column(Boolean)
    latency_ms: Mapped[float] = mapped_column(Float)
    emitted_at: Mapped[datetime]
    horizon: Mapped[int] = mapped_column(Integer, default=1)  # bars until the outcome is known
    # Signal schema_version 2: the score the action was decided on and its thresholds
    score: Mapped[float | None] = mapped_column(Float)
    buy_threshold: Mapped[float | None] = mapped_column(Float)
    sell_threshold: Mapped[float | None] = mapped_column(Float)


class Outcome(Base):
    """The outcome of a signal. `aggregated` says whether the running live-metric aggregates
    (`live_aggregates`) count it yet; the partial index finds those that they do not."""

    __tablename__ = "outcomes"
    __table_args__ = (
        Index("ix_outcomes_model_resolved", "model_key", "resolved_at"),
        Index(
            "ix_outcomes_unaggregated",
            "model_key",
            "bar_time",
            sqlite_where=text("aggregated = 0"),
            postgresql_where=text("NOT aggregated"),
        ),
    )

    signal_id: Mapped[str] = mapped_column(
        ForeignKey("signals.signal_id", ondelete="CASCADE"), primary_key=True
    )
    model_key: Mapped[str] = mapped_column(String(120))
    bar_time: Mapped[datetime]
    exit_time: Mapped[datetime]
    realised_return: Mapped[float] = mapped_column(Float)
    hit: Mapped[bool | None] = mapped_column(Boolean)
    strategy_return: Mapped[float] = mapped_column(Float)
    resolved_at: Mapped[datetime] = mapped_column(default=utcnow)
    aggregated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (Index("ix_model_versions_status", "model_key", "status"),)

    model_key: Mapped[str] = mapped_column(String(120), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(16))
    model_type: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # champion | challenger | retired
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    promoted_at: Mapped[datetime | None]
    train_start: Mapped[datetime | None]
    train_end: Mapped[datetime | None]
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    run_id: Mapped[str | None] = mapped_column(String(64))
    last_verified_at: Mapped[datetime | None]
    verification_ok: Mapped[bool | None] = mapped_column(Boolean)


class ModelEventRow(Base):
    __tablename__ = "model_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_key: Mapped[str] = mapped_column(String(120), index=True)
    version: Mapped[str] = mapped_column(String(64))
    previous_version: Mapped[str | None] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(16))  # promoted | rolled_back
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class BacktestEquity(Base):
    __tablename__ = "backtest_equity"

    model_key: Mapped[str] = mapped_column(String(120), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    time: Mapped[datetime] = mapped_column(primary_key=True)
    position: Mapped[float] = mapped_column(Float)
    strategy_return: Mapped[float] = mapped_column(Float)
    equity: Mapped[float] = mapped_column(Float)


class LiveMetricSnapshot(Base):
    __tablename__ = "live_metrics"
    __table_args__ = (Index("ix_live_metrics_key_window", "model_key", "window", "computed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_key: Mapped[str] = mapped_column(String(120))
    window: Mapped[str] = mapped_column(String(16))  # e.g. 7d, 30d, all
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)


class LiveAggregate(Base):
    """Running live-metric aggregates of one model (`bot.core.live_aggregates.Segment` as JSON):
    one row per UTC day of bars (`bucket` = `YYYY-MM-DD`) and one for all time (`all`, which
    sorts after every day)."""

    __tablename__ = "live_aggregates"
    # a snapshot reads the last 31 days of every model: a range of this index, not every day
    __table_args__ = (Index("ix_live_aggregates_bucket", "bucket"),)

    model_key: Mapped[str] = mapped_column(String(120), primary_key=True)
    bucket: Mapped[str] = mapped_column(String(10), primary_key=True)
    target: Mapped[str] = mapped_column(String(16))
    interval: Mapped[str] = mapped_column(String(16))
    segment: Mapped[dict[str, Any]] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class LiveAggregateState(Base):
    """One row: the cost the aggregates were built with (another cost rebuilds them). Every
    update of the aggregates writes it first, so that they are updated one at a time."""

    __tablename__ = "live_aggregate_state"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    cost_bps: Mapped[float] = mapped_column(Float)
    applied_at: Mapped[datetime]


class PipelineRun(Base):
    __tablename__ = "pipeline_runs"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    trigger: Mapped[str] = mapped_column(String(16))  # schedule | manual | test
    status: Mapped[str] = mapped_column(String(16))  # running | succeeded | failed
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    duration_s: Mapped[float | None] = mapped_column(Float)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    decisions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    anomalies: Mapped[dict[str, Any]] = mapped_column(default=dict)
    log_path: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)


class PipelineLock(Base):
    """The one pipeline run allowed at a time, across processes: a row while a run holds it.

    `expires_at` moves forward with the holder's heartbeat; a row past it belongs to a holder
    that died and may be taken over."""

    __tablename__ = "pipeline_lock"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64))
    holder: Mapped[str] = mapped_column(String(200))  # who: trigger, process id, host
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class OutboxEntry(Base):
    """An alert accepted while Kafka could not confirm it. Queued while `parked_at` is NULL;
    parked (neither drained nor holding newer alerts back) once Kafka refused it
    `ITFF_OUTBOX_MAX_ATTEMPTS` times, until `itff outbox retry` or `drop`."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(128), unique=True)
    topic: Mapped[str] = mapped_column(String(120))
    key: Mapped[bytes] = mapped_column(LargeBinary)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    parked_at: Mapped[datetime | None]


class Notification(Base):
    """A signal's delivery to one destination of the notifier (`itff notifier`): `delivered`, or
    `parked` with the last error once it kept failing for `ITFF_NOTIFIER_PARK_AFTER_SECONDS` (or
    was refused for good), until `itff notifications retry`."""

    __tablename__ = "notifications"

    destination: Mapped[str] = mapped_column(String(64), primary_key=True)
    signal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    signal: Mapped[str] = mapped_column(Text)  # the signal's JSON, to send it again
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
