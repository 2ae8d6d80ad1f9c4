"""The one settings object: environment variables prefixed `ITFF_`, a `.env` file, or defaults.

Built once at process start (`load_settings()`) and passed down; the pure core never reads the
environment. Invalid or placeholder configuration fails at start-up with one clear message.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.contracts.bars import BarTimeBounds
from bot.contracts.errors import ConfigError
from bot.contracts.topics import DEFAULT_PREFIX, Topics

DEV_PLACEHOLDER = "changethis"
TRADINGVIEW_IPS = ("52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7")
RATE_LIMIT_PATTERN = r"^\d+\s*(/|per)\s*\d*\s*(second|minute|hour|day)s?$"

CommaList = Annotated[list[str], NoDecode]
# every secret: set empty, it is refused (one line naming it), never an empty key or passphrase
SECRETS = (
    "tradingview_passphrase",
    "api_token",
    "webhook_secret",
    "artifact_signing_key",
    "s3_secret_access_key",
    "dash_password",
)
FILE_SCHEMES = ("csv", "parquet", "file")  # data sources that name a path (bot.data)


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every setting of every ITFF process. README lists each with its default."""

    model_config = SettingsConfigDict(
        env_prefix="ITFF_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    # general
    env: Literal["development", "production", "test"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    home: Path = Path()

    # kafka
    kafka_bootstrap: str | None = None
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    kafka_controller_port: int = Field(default=9093, ge=1, le=65535)
    kafka_version: str = "4.1.1"
    kafka_cache_dir: Path = Path(".cache/kafka")
    kafka_data_dir: Path = Path("var/kafka")
    kafka_heap: str = "512m"
    topic_prefix: str = Field(default=DEFAULT_PREFIX, pattern=r"^[A-Za-z0-9._-]+$")
    alerts_partitions: int = Field(default=6, ge=1)
    signals_partitions: int = Field(default=6, ge=1)

    # storage and artifacts
    database_url: str = "sqlite+aiosqlite:///var/itff.db"
    artifact_dir: Path = Path("artifacts")
    artifact_base_url: str | None = None
    artifact_signing_key: SecretStr | None = None
    artifact_keep_versions: int = Field(default=5, ge=2)
    # S3-compatible object storage for `itff artifacts push` (AWS S3, Cloudflare R2, MinIO)
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    s3_prefix: str = Field(default="artifacts", pattern=r"^[A-Za-z0-9._/-]*$")
    s3_region: str = "auto"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_presign_seconds: int = Field(default=3600, ge=1, le=604800)
    log_dir: Path = Path("logs")
    report_dir: Path = Path("reports")

    # data and models
    symbols: CommaList = Field(default_factory=lambda: ["SPX", "NDX"])
    interval: str = "1D"
    data_source: str = "csv:data/sample"
    targets: CommaList = Field(default_factory=lambda: ["direction", "return"])
    model_types: CommaList = Field(default_factory=lambda: ["logreg", "ridge", "hgb"])
    lookback: int = Field(default=1, ge=1, le=256)
    horizon: int = Field(default=1, ge=1, le=64)
    cost_bps: float = Field(default=1.0, ge=0)
    seed: int = 42

    # webhook receiver
    webhook_host: str = "0.0.0.0"  # noqa: S104 - a webhook receiver must be reachable
    webhook_port: int = Field(default=8080, ge=1, le=65535)
    tradingview_passphrase: SecretStr = SecretStr(DEV_PLACEHOLDER)
    webhook_secret: SecretStr | None = None
    api_token: SecretStr = SecretStr(DEV_PLACEHOLDER)
    api_rate_limit: str = Field(default="60/minute", pattern=RATE_LIMIT_PATTERN)
    webhook_rate_limit: str = Field(default="6000/minute", pattern=RATE_LIMIT_PATTERN)
    auth_failure_rate_limit: str = Field(default="30/minute", pattern=RATE_LIMIT_PATTERN)
    max_body_bytes: int = Field(default=65536, ge=1024)
    # bar-time bounds (bot.contracts.bars): None is one interval plus 5 minutes
    max_future_skew_seconds: int | None = Field(default=None, ge=0, le=366 * 86400)
    max_bar_age_days: int = Field(default=10950, ge=1, le=146000)
    # a stored bar may be revised while it is among the last N bars of its interval
    revision_window_bars: int = Field(default=3, ge=0, le=1000)
    dedupe_ttl_seconds: int = Field(default=86400, ge=1)
    publish_timeout_seconds: float = Field(default=1.0, gt=0, le=2.5)
    outbox_max_attempts: int = Field(default=5, ge=1, le=1000)  # Kafka refusals before parking
    ip_allowlist_enabled: bool = False
    ip_allowlist: CommaList = Field(default_factory=lambda: list(TRADINGVIEW_IPS))
    trusted_proxies: CommaList = Field(default_factory=list)

    # consumers, scheduler, dashboard
    consumer_metrics_port: int = Field(default=9101, ge=1, le=65535)
    scheduler_metrics_port: int = Field(default=9102, ge=1, le=65535)
    retrain_cron: str = "30 2 * * *"
    # pipeline and scheduler: see docs/pipeline.md
    pipeline_workers: int | None = Field(default=None, ge=1, le=64)  # None: the core count
    promotion_min_improvement: float = Field(default=0.0, ge=0)
    promotion_sharpe_margin: float = Field(default=0.25, ge=0)
    pipeline_retry_minutes: float = Field(default=15.0, gt=0)
    pipeline_max_retries: int = Field(default=3, ge=0, le=20)
    pipeline_misfire_grace_seconds: int = Field(default=72000, ge=1)
    pipeline_lock_ttl_seconds: float = Field(default=300.0, ge=1)  # heartbeat: a third of it
    pipeline_state_refresh_seconds: float = Field(default=30.0, gt=0, le=3600)
    verify_interval_minutes: float = Field(default=60.0, gt=0)
    live_metrics_interval_minutes: float = Field(default=15.0, gt=0)
    retention_cron: str = "15 4 * * *"
    retention_signals_days: int = Field(default=365, ge=1)
    retention_outcomes_days: int = Field(default=365, ge=1)
    retention_logs_days: int = Field(default=30, ge=1)
    retention_archive: bool = True  # expired signals and outcomes to Parquet before deletion
    archive_dir: Path = Path("archive")
    dash_host: str = "127.0.0.1"
    dash_port: int = Field(default=5006, ge=1, le=65535)
    dash_username: str = "trader"
    dash_password: SecretStr | None = None
    drift_margin: float = Field(default=0.05, ge=0, le=1)
    dash_refresh_seconds: float = Field(default=5.0, ge=1, le=3600)
    dash_allowed_origins: CommaList = Field(default_factory=list)

    @field_validator(
        "symbols",
        "targets",
        "model_types",
        "ip_allowlist",
        "trusted_proxies",
        "dash_allowed_origins",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split(value)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: object) -> object:
        """`ITFF_X=` (an empty line of .env, `${ITFF_X:-}` in compose) means unset: the default
        applies. Except for a secret (`SECRETS`): set empty, it is refused (`_no_empty_secret`),
        never a silent empty passphrase or key; unset (no line), it keeps its default."""
        if not isinstance(data, dict):
            return data
        return {
            key: value
            for key, value in data.items()
            if key in SECRETS or not (isinstance(value, str) and not value.strip())
        }

    @field_validator(*SECRETS, mode="before")
    @classmethod
    def _no_empty_secret(cls, value: object) -> object:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and not text.strip():
            raise ValueError(
                "is set but empty: give it a value, or delete the line (a secret is never empty)"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _async_postgres(cls, value: str) -> str:
        """Platform URLs (`postgres://`, `postgresql://`, Render, Heroku) get the async driver."""
        for scheme in ("postgres://", "postgresql://"):
            if value.startswith(scheme):
                return "postgresql+asyncpg://" + value.removeprefix(scheme)
        return value

    @field_validator("symbols")
    @classmethod
    def _upper_symbols(cls, value: list[str]) -> list[str]:
        return [symbol.upper() for symbol in value]

    @field_validator("ip_allowlist", "trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("targets")
    @classmethod
    def _known_targets(cls, value: list[str]) -> list[str]:
        unknown = set(value) - {"direction", "return"}
        if unknown:
            raise ValueError(f"unknown targets {sorted(unknown)}; use direction and/or return")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        for secret in value.get_secret_value().split():
            if not secret.startswith("whsec_"):
                raise ValueError("each secret must start with 'whsec_' (space-separated to rotate)")
        return value

    @model_validator(mode="after")
    def _under_home(self) -> Self:
        """`ITFF_HOME`: every relative path (folders, a SQLite file, a `csv:`/`parquet:` data
        source) is resolved against it; absolute ones and other URLs are left alone."""
        home = self.home
        if home == Path():
            return self
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name != "home" and isinstance(value, Path) and not value.is_absolute():
                object.__setattr__(self, name, home / value)
        driver, sep, path = self.database_url.partition(":///")
        if sep and driver.startswith("sqlite") and path and not path.startswith((":", "/")):
            object.__setattr__(self, "database_url", f"{driver}:///{home / path}")
        scheme, sep, rest = self.data_source.partition(":")
        if sep and scheme in FILE_SCHEMES and rest and not Path(rest).is_absolute():
            object.__setattr__(self, "data_source", f"{scheme}:{home / rest}")
        return self

    @model_validator(mode="after")
    def _no_placeholders_in_production(self) -> Self:
        if self.env != "production":
            return self
        for name in ("tradingview_passphrase", "api_token"):
            secret: SecretStr = getattr(self, name)
            if secret.get_secret_value() in {"", DEV_PLACEHOLDER} or len(secret) < 16:  # noqa: PLR2004
                raise ValueError(
                    f"ITFF_{name.upper()} must be set to a random value of at least 16 characters "
                    "in production"
                )
        return self

    @property
    def topics(self) -> Topics:
        return Topics.from_prefix(self.topic_prefix)

    @property
    def bootstrap(self) -> str:
        """The Kafka bootstrap servers: `ITFF_KAFKA_BOOTSTRAP` or the local broker."""
        return self.kafka_bootstrap or f"localhost:{self.kafka_port}"

    @property
    def uses_local_kafka(self) -> bool:
        return self.kafka_bootstrap is None

    @property
    def bar_bounds(self) -> BarTimeBounds:
        skew = self.max_future_skew_seconds
        return BarTimeBounds(
            max_age=timedelta(days=self.max_bar_age_days),
            max_future_skew=None if skew is None else timedelta(seconds=skew),
        )

    @property
    def webhook_secrets(self) -> list[str]:
        return self.webhook_secret.get_secret_value().split() if self.webhook_secret else []


def load_settings(**overrides: object) -> Settings:
    """Build the settings or raise `ConfigError` with one line per problem."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"ITFF_{'_'.join(str(p) for p in err['loc']).upper() or 'SETTINGS'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc
