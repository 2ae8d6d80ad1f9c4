"""The one settings object: environment variables prefixed `ITFF_`, a `.env` file, or defaults.

Built once at process start (`load_settings()`) and passed down; the pure core never reads the
environment. Invalid or placeholder configuration fails at start-up with one clear message.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.contracts.bars import BarTimeBounds
from bot.contracts.errors import ConfigError
from bot.contracts.production import Service, production_problem, webhook_key
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
    "artifact_legacy_hmac_key",
    "s3_secret_access_key",
    "dash_password",
    "signal_webhook_secret",
    "telegram_bot_token",
    "discord_webhook_url",
)
FILE_SCHEMES = ("csv", "parquet", "file")  # data sources that name a path (bot.data)
# Ed25519 keys as `itff artifacts keygen` prints them (bot.artifacts.signing): 32 bytes, base64url
PRIVATE_KEY_PATTERN = re.compile(r"ed25519sk_[A-Za-z0-9_-]{43}")
PUBLIC_KEY_PATTERN = re.compile(r"ed25519pk_[A-Za-z0-9_-]{43}")


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
    # the local PostgreSQL server of `itff postgres start` (Debian's binaries)
    postgres_data_dir: Path = Path("var/postgres")
    postgres_port: int | None = Field(default=None, ge=1, le=65535)
    postgres_bin_dir: Path | None = None
    artifact_dir: Path = Path("artifacts")
    artifact_base_url: str | None = None
    artifact_signing_key: SecretStr | None = None  # Ed25519 private key: the scheduler only
    artifact_public_keys: CommaList = Field(default_factory=list)  # Ed25519, verifying
    artifact_legacy_hmac_key: SecretStr | None = None  # the HMAC-era key, during the transition
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
    # compiled: the pickle-free form (numpy arrays, treelite); sklearn: the unpickled pipeline
    serving_runtime: Literal["compiled", "sklearn"] = "compiled"

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

    # Prometheus listeners: loopback unless opened for a scraper on a private network
    metrics_host: str = "127.0.0.1"
    webhook_metrics_port: int = Field(default=9100, ge=0, le=65535)  # 0: none

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
    scheduler_leader_ttl_seconds: float = Field(default=30.0, ge=1)  # beat and poll: a third
    pipeline_state_refresh_seconds: float = Field(default=30.0, gt=0, le=3600)
    verify_interval_minutes: float = Field(default=60.0, gt=0)
    live_metrics_interval_minutes: float = Field(default=15.0, gt=0)
    retention_cron: str = "15 4 * * *"
    daily_report_cron: str = "0 3 * * *"  # the previous UTC day (bot/pipeline/daily.py)
    weekly_report_cron: str = "30 3 * * 1"  # the previous ISO week (bot/pipeline/weekly.py)
    retention_signals_days: int = Field(default=365, ge=1)
    retention_outcomes_days: int = Field(default=365, ge=1)
    retention_logs_days: int = Field(default=30, ge=1)
    retention_archive: bool = True  # expired signals and outcomes to Parquet before deletion
    archive_dir: Path = Path("archive")
    retention_reports_days: int = Field(default=365, ge=1)
    dash_host: str = "127.0.0.1"
    dash_port: int = Field(default=5006, ge=1, le=65535)
    dash_username: str = "trader"
    dash_password: SecretStr | None = None
    drift_margin: float = Field(default=0.05, ge=0, le=1)
    dash_refresh_seconds: float = Field(default=5.0, ge=1, le=3600)
    dash_allowed_origins: CommaList = Field(default_factory=list)

    # notifier: signals to webhooks, Telegram and Discord (docs/subscribers.md); each destination
    # takes the signals matching its symbols, model keys and actions (empty: all)
    signal_webhook_urls: CommaList = Field(default_factory=list)
    signal_webhook_secret: SecretStr | None = None
    signal_webhook_symbols: CommaList = Field(default_factory=list)
    signal_webhook_models: CommaList = Field(default_factory=list)
    signal_webhook_actions: CommaList = Field(default_factory=lambda: ["buy", "sell"])
    telegram_bot_token: SecretStr | None = None
    telegram_chat_id: str | None = None
    telegram_api_base_url: str = "https://api.telegram.org"
    telegram_symbols: CommaList = Field(default_factory=list)
    telegram_models: CommaList = Field(default_factory=list)
    telegram_actions: CommaList = Field(default_factory=lambda: ["buy", "sell"])
    discord_webhook_url: SecretStr | None = None
    discord_symbols: CommaList = Field(default_factory=list)
    discord_models: CommaList = Field(default_factory=list)
    discord_actions: CommaList = Field(default_factory=lambda: ["buy", "sell"])
    notifier_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    notifier_park_after_seconds: float = Field(default=300.0, gt=0, le=86400)
    notifier_metrics_port: int = Field(default=9103, ge=0, le=65535)

    @field_validator(
        "symbols",
        "targets",
        "model_types",
        "ip_allowlist",
        "trusted_proxies",
        "dash_allowed_origins",
        "signal_webhook_urls",
        "signal_webhook_symbols",
        "signal_webhook_models",
        "signal_webhook_actions",
        "telegram_symbols",
        "telegram_models",
        "telegram_actions",
        "discord_symbols",
        "discord_models",
        "discord_actions",
        "artifact_public_keys",
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

    @field_validator("signal_webhook_actions", "telegram_actions", "discord_actions")
    @classmethod
    def _known_actions(cls, value: list[str]) -> list[str]:
        value = [action.lower() for action in value]
        unknown = set(value) - {"buy", "sell", "hold"}
        if unknown:
            raise ValueError(f"unknown actions {sorted(unknown)}; use buy, sell and/or hold")
        return value

    @field_validator("signal_webhook_urls", "telegram_api_base_url")
    @classmethod
    def _http_urls(cls, value: str | list[str]) -> str | list[str]:
        for url in [value] if isinstance(value, str) else value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return value

    @field_validator("discord_webhook_url")
    @classmethod
    def _discord_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must be the webhook's http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _destinations_complete(self) -> Self:
        if self.signal_webhook_urls and self.signal_webhook_secret is None:
            raise ValueError(
                "ITFF_SIGNAL_WEBHOOK_URLS needs ITFF_SIGNAL_WEBHOOK_SECRET (whsec_...) to sign"
            )
        if (self.telegram_bot_token is None) != (self.telegram_chat_id is None):
            raise ValueError(
                "set both ITFF_TELEGRAM_BOT_TOKEN and ITFF_TELEGRAM_CHAT_ID, or neither"
            )
        return self

    @field_validator("artifact_signing_key")
    @classmethod
    def _ed25519_private(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not PRIVATE_KEY_PATTERN.fullmatch(value.get_secret_value()):
            raise ValueError(
                "is not an Ed25519 private key (ed25519sk_...): create one with `itff artifacts "
                "keygen`; an HMAC key of an earlier release goes to ITFF_ARTIFACT_LEGACY_HMAC_KEY "
                "during the transition"
            )
        return value

    @field_validator("artifact_public_keys")
    @classmethod
    def _ed25519_public(cls, value: list[str]) -> list[str]:
        for item in value:
            if not PUBLIC_KEY_PATTERN.fullmatch(item):
                raise ValueError(
                    f"{item[:16]!r}... is not an Ed25519 public key (ed25519pk_... as `itff "
                    "artifacts keygen` prints it; comma-separated to rotate)"
                )
        return value

    @field_validator("webhook_secret", "signal_webhook_secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        for secret in value.get_secret_value().split():
            if not secret.startswith("whsec_"):
                raise ValueError("each secret must start with 'whsec_' (space-separated to rotate)")
            try:
                webhook_key(secret)
            except ValueError as exc:
                raise ValueError(f"a secret {exc}: each is 'whsec_' + a base64 key") from None
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


def service_settings(service: Service, **overrides: object) -> Settings:
    """`load_settings` for a service's start-up: in production, also refuse what the service
    cannot safely run without (`bot.contracts.production`), one line naming the variable."""
    settings = load_settings(**overrides)
    problem = production_problem(settings, service)
    if problem:
        raise ConfigError(f"refusing to start the {service}: {problem}")
    return settings
