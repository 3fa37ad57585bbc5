"""Typed, frozen settings parsed once at the edge from the environment.

Each section reads its own prefix (the seed's ``DB_``, ``SECURITY_``, ``LOG_``,
``MESSAGING_`` plus ``KAFKA_``, ``REGISTRY_``, ``OTEL_``). Three variables are the
canonical connection settings everywhere: ``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``
and ``REGISTRY_URL``. :func:`load_settings` gathers every problem, including the
financial-compliance rules enforced when ``ENVIRONMENT=production``, into one
:class:`~streaming.errors.ConfigError`.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from streaming.core.topics import REVOCATIONS_TOPIC, SCHEMAS_TOPIC
from streaming.errors import ConfigError

MIN_AUDIT_RETENTION_DAYS = 2555  # seven years, the seed's regulatory floor
MIN_PASSWORD_SALT_ROUNDS = 12
MAX_PRODUCTION_ACCESS_TOKEN_MINUTES = 60


class Environment(enum.StrEnum):
    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"


def _section(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=prefix,
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        case_sensitive=False,
    )


def parse_bootstrap_servers(value: str) -> tuple[str, ...]:
    """Split ``host:port[,host:port...]``; raise ``ValueError`` naming the bad entry."""
    entries = [e.strip() for e in value.split(",") if e.strip()]
    if not entries:
        raise ValueError("is empty; expected host:port[,host:port...] e.g. 127.0.0.1:9092")
    for entry in entries:
        host, sep, port = entry.rpartition(":")
        if "://" in entry:
            raise ValueError(f"entry {entry!r} has a scheme; give host:port without '://'")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                f"entry {entry!r} is not host:port with a port in 1..65535 "
                "(e.g. KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092)"
            )
    return tuple(entries)


class KafkaSettings(BaseSettings):
    model_config = _section("KAFKA_")

    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "tradesense-streaming"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    request_timeout_ms: int = Field(default=30_000, gt=0)
    metadata_timeout_s: float = Field(default=10.0, gt=0)
    default_partitions: int = Field(default=6, gt=0)
    default_replication_factor: int | None = Field(default=None, gt=0)
    """Replicas of the topics we create; unset: ``min(3, brokers in the cluster)``."""
    min_insync_replicas: int | None = Field(default=None, gt=0)
    """Their ``min.insync.replicas``; unset: ``min(2, replication factor)``."""

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        return ",".join(parse_bootstrap_servers(value))

    @property
    def bootstrap_list(self) -> list[str]:
        return self.bootstrap_servers.split(",")


class DatabaseSettings(BaseSettings):
    """``DATABASE_URL`` wins; otherwise the seed's ``DB_HOST``/``DB_PORT``/... build it."""

    model_config = _section("DB_")

    url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "DB_URL", "url")
    )
    host: str = "localhost"
    port: int = Field(default=5432, gt=0, lt=65536)
    username: str = "tradesense"
    password: SecretStr = SecretStr("")
    database: str = "tradesense"
    ssl_mode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    pool_size: int = Field(default=10, gt=0)
    max_overflow: int = Field(default=20, ge=0)
    pool_timeout_s: float = Field(default=30.0, gt=0)
    pool_recycle_s: float = Field(default=1800.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    slow_query_ms: float = Field(default=500.0, gt=0)
    breaker_failure_threshold: int = Field(default=5, gt=0)
    breaker_cooldown_s: float = Field(default=10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        parts = urlsplit(value.get_secret_value())
        if not parts.scheme.startswith("postgres") or not parts.hostname:
            raise ValueError("must look like postgresql://user:password@host:5432/dbname")
        return value

    @property
    def connection_url(self) -> str:
        """A SQLAlchemy URL for the asyncpg driver (contains the password: never log it)."""
        if self.url is not None:
            raw = self.url.get_secret_value()
            _scheme, rest = raw.split("://", 1)
            base = rest.split("?", 1)[0]
            return f"postgresql+asyncpg://{base}"
        auth = quote(self.username, safe="")
        secret = self.password.get_secret_value()
        if secret:
            auth += ":" + quote(secret, safe="")
        return f"postgresql+asyncpg://{auth}@{self.host}:{self.port}/{self.database}"

    @property
    def effective_ssl_mode(self) -> str:
        if self.url is not None:
            query = parse_qs(urlsplit(self.url.get_secret_value()).query)
            for key in ("sslmode", "ssl"):
                if key in query:
                    return query[key][0]
        return self.ssl_mode

    @property
    def configured(self) -> bool:
        """True when the environment names a database (``DATABASE_URL`` or ``DB_HOST``)."""
        return self.url is not None or "host" in self.model_fields_set

    @property
    def ssl_enabled(self) -> bool:
        return self.effective_ssl_mode in {"require", "verify-ca", "verify-full", "true"}

    @property
    def display_url(self) -> str:
        """The URL with the password replaced, safe for logs and status output."""
        parts = urlsplit(self.connection_url.replace("postgresql+asyncpg", "postgresql"))
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        user = (
            f"{parts.username}:***@"
            if parts.password
            else (f"{parts.username}@" if parts.username else "")
        )
        return f"postgresql://{user}{host}{port}{parts.path}"


class RegistrySettings(BaseSettings):
    model_config = _section("REGISTRY_")

    url: str = "http://127.0.0.1:8081"
    basic_auth_user_info: SecretStr | None = None
    bearer_token: SecretStr | None = None
    timeout_s: float = Field(default=10.0, gt=0)
    latest_cache_ttl_s: float = Field(default=60.0, ge=0)
    max_retries: int = Field(default=3, ge=0)
    topic: str = SCHEMAS_TOPIC
    auth_enabled: bool = False
    credentials_path: Path | None = None

    @property
    def configured(self) -> bool:
        """True when the environment (or a .env file) names a registry (``REGISTRY_URL``)."""
        return "url" in self.model_fields_set

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:8081")
        return value.rstrip("/")


class SecuritySettings(BaseSettings):
    model_config = _section("SECURITY_")

    jwt_secret_key: SecretStr | None = None
    jwt_algorithm: Literal["EdDSA", "ES256", "HS256"] = "EdDSA"
    jwt_private_key_pem: SecretStr | None = None
    jwt_issuer: str = "tradesense-streaming"
    jwt_audience: str = "tradesense"
    jwt_leeway_s: float = Field(default=10.0, ge=0)
    access_token_expire_minutes: int = Field(default=15, gt=0)
    refresh_token_expire_days: int = Field(default=7, gt=0)
    password_pepper: SecretStr | None = None
    password_salt_rounds: int = Field(default=12, gt=0)
    encryption_key: SecretStr | None = None
    rbac_policy_path: Path | None = None
    rbac_cache_ttl_s: float = Field(default=60.0, ge=0)
    # Every token verifier tails this compacted topic (see streaming.security.revocation_log).
    revocation_topic: str = REVOCATIONS_TOPIC
    # A verifier that cannot confirm its revocation list is this fresh refuses tokens (503).
    revocation_max_lag_s: float = Field(default=2.0, gt=0)


class LoggingSettings(BaseSettings):
    model_config = _section("LOG_")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["json", "console"] = "console"
    audit_retention_days: int = Field(default=MIN_AUDIT_RETENTION_DAYS, gt=0)
    audit_encryption_enabled: bool = True

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class MessagingSettings(BaseSettings):
    model_config = _section("MESSAGING_")

    event_bus_type: Literal["in_memory", "kafka"] = "kafka"
    outbox_enabled: bool = True
    retry_attempts: int = Field(default=3, ge=0)
    retry_delays_s: tuple[float, ...] = (1.0, 5.0, 30.0)
    retry_jitter: float = Field(default=0.1, ge=0, le=1)


class OtelSettings(BaseSettings):
    model_config = _section("OTEL_")

    service_name: str = "tradesense-streaming"
    exporter_otlp_endpoint: str | None = None
    # The OTel SDK's OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER: "none" keeps a signal
    # off the OTLP endpoint (e.g. metrics that Prometheus scrapes instead).
    traces_exporter: str = "otlp"
    metrics_exporter: str = "otlp"
    traces_enabled: bool = True
    metrics_enabled: bool = True
    # A Prometheus scrape endpoint (/metrics) on this port; off when unset, 0 picks one.
    prometheus_port: int | None = Field(default=None, ge=0, lt=65536)
    prometheus_host: str = "0.0.0.0"  # noqa: S104 - a scrape target must be reachable


class Settings(BaseModel):
    """All sections together; build it with :func:`load_settings`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    environment: Environment = Environment.DEVELOPMENT
    kafka: KafkaSettings
    database: DatabaseSettings
    registry: RegistrySettings
    security: SecuritySettings
    logging: LoggingSettings
    messaging: MessagingSettings
    otel: OtelSettings

    def compliance_problems(self) -> list[str]:
        """The seed's financial-compliance rules; they bind only in production."""
        if self.environment is not Environment.PRODUCTION:
            return []
        problems: list[str] = []
        if self.logging.audit_retention_days < MIN_AUDIT_RETENTION_DAYS:
            problems.append(
                f"LOG_AUDIT_RETENTION_DAYS={self.logging.audit_retention_days}: audit retention "
                f"must be at least {MIN_AUDIT_RETENTION_DAYS} days (7 years) in production"
            )
        if not self.database.ssl_enabled:
            problems.append(
                f"database SSL is '{self.database.effective_ssl_mode}': set DB_SSL_MODE=require "
                "(or sslmode=require in DATABASE_URL) in production"
            )
        if self.security.password_salt_rounds < MIN_PASSWORD_SALT_ROUNDS:
            problems.append(
                f"SECURITY_PASSWORD_SALT_ROUNDS={self.security.password_salt_rounds}: must be at "
                f"least {MIN_PASSWORD_SALT_ROUNDS} in production"
            )
        if self.security.access_token_expire_minutes > MAX_PRODUCTION_ACCESS_TOKEN_MINUTES:
            problems.append(
                "SECURITY_ACCESS_TOKEN_EXPIRE_MINUTES="
                f"{self.security.access_token_expire_minutes}: access tokens must expire within "
                f"{MAX_PRODUCTION_ACCESS_TOKEN_MINUTES} minutes in production"
            )
        if not self.logging.audit_encryption_enabled:
            problems.append(
                "LOG_AUDIT_ENCRYPTION_ENABLED=false: audit log encryption must be on in production"
            )
        return problems


_SECTIONS: dict[str, tuple[type[BaseSettings], str]] = {
    "kafka": (KafkaSettings, "KAFKA_"),
    "database": (DatabaseSettings, "DB_"),
    "registry": (RegistrySettings, "REGISTRY_"),
    "security": (SecuritySettings, "SECURITY_"),
    "logging": (LoggingSettings, "LOG_"),
    "messaging": (MessagingSettings, "MESSAGING_"),
    "otel": (OtelSettings, "OTEL_"),
}


def _describe(prefix: str, err: ValidationError) -> list[str]:
    problems = []
    for item in err.errors():
        loc = "_".join(str(p) for p in item["loc"]) or "?"
        name = (
            loc.upper() if loc.upper().startswith(("DATABASE_URL",)) else f"{prefix}{loc.upper()}"
        )
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{name}: {message}")
    return problems


S = TypeVar("S", bound=BaseSettings)


def read_settings(cls: type[S], **values: Any) -> S:
    """One settings section from the environment (``values`` win); raises
    :class:`ConfigError` listing every invalid value under its variable name."""
    try:
        return cls(**values)
    except ValidationError as err:
        raise ConfigError(_describe(str(cls.model_config.get("env_prefix", "")), err)) from err


def load_settings(
    environment: Environment | str | None = None, **sections: dict[str, Any]
) -> Settings:
    """Read every section from the environment, with optional per-section overrides.

    ``load_settings(database={"pool_size": 3})`` overrides one field. Raises
    :class:`ConfigError` listing every invalid value and every violated compliance rule.
    """
    import os

    unknown = set(sections) - set(_SECTIONS)
    problems = [f"unknown settings section {name!r}" for name in sorted(unknown)]
    built: dict[str, Any] = {}
    for name, (cls, prefix) in _SECTIONS.items():
        try:
            built[name] = cls(**sections.get(name, {}))
        except ValidationError as err:
            problems.extend(_describe(prefix, err))
    env_value = (
        environment if environment is not None else os.environ.get("ENVIRONMENT", "development")
    )
    try:
        env = Environment(str(env_value).lower())
    except ValueError:
        problems.append(
            f"ENVIRONMENT={env_value!r}: must be one of development, staging, production"
        )
        env = Environment.DEVELOPMENT
    if problems:
        raise ConfigError(problems)
    settings = Settings(environment=env, **built)
    compliance = settings.compliance_problems()
    if compliance:
        raise ConfigError(compliance, title="configuration violates financial-compliance rules")
    return settings


__all__ = [
    "DatabaseSettings",
    "Environment",
    "KafkaSettings",
    "LoggingSettings",
    "MessagingSettings",
    "OtelSettings",
    "RegistrySettings",
    "SecuritySettings",
    "Settings",
    "load_settings",
    "parse_bootstrap_servers",
    "read_settings",
]
