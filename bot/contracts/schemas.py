"""Wire contracts: one pydantic model per topic, shared by the producer and the consumer.

Every message carries `schema_version`. `Alert` is on `itff.alerts` (key = symbol), `Signal` on
`itff.signals` (key = symbol), `ModelEvent` on `itff.models` (key = model_key) and `DeadLetter` on
`itff.alerts.dlq`. `TradingViewMessage` is the alert message users paste into TradingView.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from bot.contracts.bars import MAX_EPOCH_DIGITS, from_epoch, interval_length, representable

SCHEMA_VERSION: Literal[1] = 1
# Signal 2 adds the optional `score`, `buy_threshold`, `sell_threshold`: version 1 readers that
# ignore unknown fields read it unchanged, and this class still reads version 1 signals
SIGNAL_SCHEMA_VERSION: Literal[2] = 2
# Prices and volumes of real instruments, with orders of magnitude to spare (a meme coin quoted in
# BTC near 1e-10, an index near 1e5): beyond them a bar is a bug or an attack, and its features
# (ratios of consecutive bars) would overflow the models' scaler downstream
MIN_PRICE, MAX_PRICE = 1e-12, 1e12
MAX_VOLUME = 1e21
MAX_EXTRA_FIELDS = 32
MAX_EXTRA_BYTES = 4096
SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:!/-]{0,39}$"

AlertSource = Literal["tradingview", "signed", "replay"]
Action = Literal["buy", "sell", "hold"]
Target = Literal["direction", "return"]
ModelEventKind = Literal["promoted", "rolled_back"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _parse_time(value: Any) -> Any:
    """Accept ISO-8601 strings (TradingView's `{{time}}`) and epoch seconds or milliseconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return from_epoch(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit() and text.isascii():
            if len(text) > MAX_EPOCH_DIGITS:
                raise ValueError(f"time has more than {MAX_EPOCH_DIGITS} digits")
            return from_epoch(int(text))
    return value


def _price_given(value: Any) -> Any:
    """A price that is missing or `NaN` (read as null) gets the message of a bad number."""
    if value is None:
        raise ValueError("must be a finite number greater than 0")
    return value


def _finite_positive(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a finite number greater than 0")
    if not MIN_PRICE <= value <= MAX_PRICE:
        raise ValueError(f"must be between {MIN_PRICE:g} and {MAX_PRICE:g}")
    return value


def _finite_non_negative(value: float | None) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a finite number of at least 0, or null when there is none")
    if value > MAX_VOLUME:
        raise ValueError(f"must be at most {MAX_VOLUME:g}")
    return value


def _nan_is_missing(value: Any) -> Any:
    """TradingView sends `NaN` for the volume of a symbol without one (indices): missing."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str) and value.strip().lower() in {"nan", ""}:
        return None
    return value


def _known_interval(value: str) -> str:
    interval_length(value)
    return value


UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_parse_time), AfterValidator(representable)]
Price = Annotated[float, BeforeValidator(_price_given), AfterValidator(_finite_positive)]
# missing for symbols without volume (indices): stored as NULL, a neutral volume feature
Volume = Annotated[
    float | None, BeforeValidator(_nan_is_missing), AfterValidator(_finite_non_negative)
]
Symbol = Annotated[str, Field(pattern=SYMBOL_PATTERN), AfterValidator(str.upper)]
Interval = Annotated[
    str,
    Field(min_length=1, max_length=16, pattern=r"^[0-9A-Za-z]+$"),
    AfterValidator(_known_interval),
]
AlertId = Annotated[str, Field(min_length=8, max_length=128, pattern=r"^[\x21-\x7e]+$")]
# a signed alert's id is its verified `webhook-id` in a namespace of its own: TradingView's ids
# are 32 hex digits, so a signed client can never claim the id of a TradingView alert
SIGNED_ID_PREFIX = "signed:"
WebhookId = Annotated[
    str, Field(min_length=8, max_length=128 - len(SIGNED_ID_PREFIX), pattern=r"^[\x21-\x7e]+$")
]


def make_alert_id(
    *, source: str, symbol: str, interval: str, bar_time: datetime, action: str | None
) -> str:
    """Deterministic id of an unsigned alert: the same bar and action always hash the same."""
    raw = "|".join(
        (source, symbol.upper(), interval, bar_time.astimezone(UTC).isoformat(), action or "")
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _check_extra(extra: dict[str, Any]) -> dict[str, Any]:
    if not extra:  # most alerts: no need to measure
        return extra
    if len(extra) > MAX_EXTRA_FIELDS:
        raise ValueError(f"at most {MAX_EXTRA_FIELDS} extra fields are kept, got {len(extra)}")
    size = len(json.dumps(extra, default=str))
    if size > MAX_EXTRA_BYTES:
        raise ValueError(f"extra fields take {size} bytes, at most {MAX_EXTRA_BYTES} are kept")
    return extra


class _Bar(BaseModel):
    """OHLCV with the invariants every bar on the wire must hold."""

    open: Price
    high: Price
    low: Price
    close: Price
    volume: Volume = None

    @model_validator(mode="after")
    def _ohlc_consistent(self) -> Self:
        if (
            not self.low <= min(self.open, self.close)
            or not max(self.open, self.close) <= self.high
        ):
            raise ValueError(
                f"inconsistent bar: need low <= open, close <= high, got open={self.open} "
                f"high={self.high} low={self.low} close={self.close}"
            )
        return self


class Alert(_Bar):
    """A bar from TradingView, a signed client or the replayer, on `itff.alerts` (key = symbol)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    alert_id: AlertId
    source: AlertSource
    symbol: Symbol
    exchange: Annotated[str | None, Field(max_length=40)] = None
    interval: Interval
    bar_time: UtcDatetime
    action: Literal["buy", "sell"] | None = None
    received_at: UtcDatetime = Field(default_factory=utcnow)
    extra: Annotated[dict[str, Any], AfterValidator(_check_extra)] = Field(default_factory=dict)


class _Given(BaseModel):
    """What a caller may add in `TradingViewMessage.to_alert`, with `Alert`'s checks."""

    webhook_id: WebhookId | None = None
    received_at: UtcDatetime | None = None


class TradingViewMessage(_Bar):
    """The alert message of DESIGN.md as TradingView posts it; unknown fields go to `extra`."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    passphrase: SecretStr | None = None
    ticker: Symbol
    exchange: Annotated[str | None, Field(max_length=40)] = None
    interval: Interval
    time: UtcDatetime
    action: Literal["buy", "sell"] | None = None

    @model_validator(mode="after")
    def _bounded_extra(self) -> Self:
        _check_extra(dict(self.model_extra or {}))
        return self

    @field_validator("action", mode="before")
    @classmethod
    def _normalise_action(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            return value or None
        return value

    def to_alert(
        self,
        *,
        source: AlertSource,
        webhook_id: str | None = None,
        received_at: datetime | None = None,
    ) -> Alert:
        """The wire `Alert`; the passphrase never leaves this object. With a verified
        `webhook_id` the alert's id is `signed:<webhook_id>`, else the deterministic hash.

        Built without validating again what this message already validated: its fields have the
        types and checks of `Alert`'s (a test holds the two models together), so only what the
        caller adds, `webhook_id` and `received_at`, is checked here.
        """
        alert_id = None
        if webhook_id or received_at:
            given = _Given(webhook_id=webhook_id or None, received_at=received_at)
            received_at = given.received_at
            alert_id = given.webhook_id and SIGNED_ID_PREFIX + given.webhook_id
        return Alert.model_construct(
            alert_id=alert_id
            or make_alert_id(
                source=source,
                symbol=self.ticker,
                interval=self.interval,
                bar_time=self.time,
                action=self.action,
            ),
            source=source,
            symbol=self.ticker,
            exchange=self.exchange,
            interval=self.interval,
            bar_time=self.time,
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            volume=self.volume,
            action=self.action,
            received_at=received_at or utcnow(),
            extra=dict(self.model_extra or {}),
        )


class Signal(BaseModel):
    """One model's forecast for one alert, on `itff.signals` (key = symbol).

    `action` is decided on `score` (P(up) for `direction`, the predicted log return for
    `return`): `buy` when score >= `buy_threshold`, else `sell` when score <= `sell_threshold`,
    else `hold`; always `hold` when `ood`. `prediction` is the model's own class (score > 0.5) or
    value and is not what the action is decided on (see docs/consumers.md, "Reading a signal").
    """

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    schema_version: Literal[1, 2] = SIGNAL_SCHEMA_VERSION
    signal_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    alert_id: str
    symbol: Symbol
    interval: Interval
    bar_time: UtcDatetime
    model_key: str
    model_version: str
    target: Target
    prediction: float
    probability: float | None = Field(default=None, ge=0.0, le=1.0)
    action: Action
    ood: bool
    latency_ms: float = Field(ge=0.0)
    emitted_at: UtcDatetime = Field(default_factory=utcnow)
    # schema_version 2: what the action was decided on (None in version 1 signals)
    score: float | None = None
    buy_threshold: float | None = None
    sell_threshold: float | None = None


class ModelEvent(BaseModel):
    """A champion change, on `itff.models` (key = model_key); consumers hot-reload on it."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    schema_version: Literal[1] = SCHEMA_VERSION
    model_key: str
    version: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    event: ModelEventKind
    metrics: dict[str, float | None] = Field(default_factory=dict)
    emitted_at: UtcDatetime = Field(default_factory=utcnow)


class DeadLetter(BaseModel):
    """What could not be processed, with the reason, on `itff.alerts.dlq`."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64"
    )

    schema_version: Literal[1] = SCHEMA_VERSION
    original: bytes
    error: str
    reason: str
    stage: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    failed_at: UtcDatetime = Field(default_factory=utcnow)


def model_key(symbol: str, target: str, model_type: str) -> str:
    """`{symbol}-{target}-{model_type}`, the name of a model line."""
    return f"{symbol.upper()}-{target}-{model_type}"
