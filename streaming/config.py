"""Typed, frozen settings parsed once at the edge from the environment.

Each section reads its own prefix (the seed's ``DB_``, ``SECURITY_``, ``LOG_``,
``MESSAGING_`` plus ``KAFKA_``, ``REGISTRY_``, ``OTEL_``). Three variables are the
canonical connection settings everywhere: ``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``
and ``REGISTRY_URL``. :func:`load_settings` gathers every problem, including the seed's
financial-compliance rules (audit retention, salt rounds and audit encryption always;
database SSL and short access tokens in production), into one
:class:`~streaming.errors.ConfigError`; :func:`get_settings` is the cached front door.

Why it is long (~520 lines): it is one settings tree of declarative sections whose
compliance rules cross sections; split by section, those rules would lose the whole
picture they check.
"""

from __future__ import annotations

import enum
import functools
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
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from streaming.core.topics import REVOCATIONS_TOPIC, SCHEMAS_TOPIC, SUBJECT_KEYS_TOPIC
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


def parse_db_hosts(hosts: str, default_port: int) -> tuple[tuple[str, int], ...]:
    """``h1[:p1],h2[:p2]`` (``[::1]:p`` for IPv6) -> ``((h1, p1), (h2, p2))``."""
    found: list[tuple[str, int]] = []
    for entry in (e.strip() for e in hosts.split(",")):
        if not entry:
            continue
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            port_text = rest.removeprefix(":")
        elif entry.count(":") == 1:
            host, _, port_text = entry.partition(":")
        else:
            host, port_text = entry, ""
        if not host or (port_text and not port_text.isdigit()):
            raise ValueError(f"host {entry!r} is not host[:port]")
        port = int(port_text) if port_text else default_port
        if not 0 < port < 65536:
            raise ValueError(f"host {entry!r} has a port outside 1..65535")
        found.append((host, port))
    if not found:
        raise ValueError("names no host; expected host[:port][,host[:port]...]")
    return tuple(found)


def _split_url(raw: str) -> tuple[str, str, str, str]:
    """``scheme://userinfo@hostlist/path?query`` -> its four parts; unlike ``urlsplit``
    this accepts the multi-host form ``postgresql://u@h1:5432,h2:5433/db``."""
    scheme, sep, rest = raw.partition("://")
    if not sep:
        raise ValueError("must look like postgresql://user:password@host:5432/dbname")
    rest = rest.partition("?")[0]
    authority, slash, path = rest.partition("/")
    userinfo, at, hostlist = authority.rpartition("@")
    return scheme, userinfo if at else "", hostlist, (slash + path) if slash else ""


class DatabaseSettings(BaseSettings):
    """``DATABASE_URL`` wins; otherwise the seed's ``DB_HOST``/``DB_PORT``/... build it.

    Either may name several hosts (``DB_HOST=a,b`` or ``postgresql://u@a:5432,b:5432/db``):
    they are tried in that order, each behind its own circuit breaker (failover).
    """

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
        scheme, _user, hostlist, _path = _split_url(value.get_secret_value())
        if not scheme.startswith("postgres") or not hostlist:
            raise ValueError("must look like postgresql://user:password@host:5432/dbname")
        parse_db_hosts(hostlist, 5432)
        return value

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        parse_db_hosts(value, 5432)
        return value

    @property
    def hosts(self) -> tuple[tuple[str, int], ...]:
        """Every ``(host, port)`` to try, in failover order."""
        if self.url is not None:
            _scheme, _user, hostlist, _path = _split_url(self.url.get_secret_value())
            return parse_db_hosts(hostlist, 5432)
        return parse_db_hosts(self.host, self.port)

    def host_url(self, index: int = 0) -> str:
        """The asyncpg SQLAlchemy URL of host ``index`` (contains the password: never log it)."""
        host, port = self.hosts[index]
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if self.url is not None:
            _scheme, userinfo, _hosts, path = _split_url(self.url.get_secret_value())
            auth = f"{userinfo}@" if userinfo else ""
            return f"postgresql+asyncpg://{auth}{netloc}{path}"
        auth = quote(self.username, safe="")
        secret = self.password.get_secret_value()
        if secret:
            auth += ":" + quote(secret, safe="")
        return f"postgresql+asyncpg://{auth}@{netloc}/{self.database}"

    @property
    def connection_url(self) -> str:
        """The first host's SQLAlchemy URL for asyncpg (contains the password: never log
        it; :attr:`display_url` is the printable form)."""
        return self.host_url(0)

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
        """The first host's URL with the password replaced, safe for logs and output."""
        return self.display_host_url(0)

    def display_host_url(self, index: int) -> str:
        """Host ``index``'s URL with the password replaced."""
        parts = urlsplit(self.host_url(index).replace("postgresql+asyncpg", "postgresql"))
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
    """``SECURITY_JWT_ALGORITHM`` unset: HS256 when only ``SECURITY_JWT_SECRET_KEY`` is
    given (the seed's configuration), else EdDSA with ``SECURITY_JWT_PRIVATE_KEY_PEM``."""

    model_config = _section("SECURITY_")

    jwt_secret_key: SecretStr | None = None
    jwt_private_key_pem: SecretStr | None = None
    jwt_algorithm: Literal["EdDSA", "ES256", "HS256"] = Field(default=None, validate_default=True)
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
    # Producer-side PII encryption (streaming.privacy): the key-encryption key that wraps
    # per-subject data keys; unset = marked fields are sent in clear (refused in production).
    pii_kek: SecretStr | None = None
    pii_previous_keks: SecretStr | None = None
    # Wrapped data keys live in this compacted topic, tailed by every process.
    pii_keys_topic: str = SUBJECT_KEYS_TOPIC
    # A process whose copy of the keys is older than this neither encrypts nor decrypts.
    pii_key_max_lag_s: float = Field(default=2.0, gt=0)

    @field_validator("jwt_algorithm", mode="before")
    @classmethod
    def _default_algorithm(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None:
            return value
        only_secret = (
            info.data.get("jwt_secret_key") is not None
            and info.data.get("jwt_private_key_pem") is None
        )
        return "HS256" if only_secret else "EdDSA"


class LoggingSettings(BaseSettings):
    """``level`` and ``format`` may be reassigned (validated), as the seed's debug-mode
    recipe does before calling ``configure_logging`` again; the audit fields may not."""

    model_config = SettingsConfigDict(
        env_prefix="LOG_",
        validate_assignment=True,
        extra="forbid",
        populate_by_name=True,
        case_sensitive=False,
    )

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["json", "console"] = "console"
    audit_retention_days: int = Field(default=MIN_AUDIT_RETENTION_DAYS, gt=0, frozen=True)
    audit_encryption_enabled: bool = Field(default=True, frozen=True)

    @property
    def audit_retention_ms(self) -> int:
        """The audit topic's ``retention.ms``."""
        return self.audit_retention_days * 86_400_000

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
    """All sections together; build it with :func:`load_settings` (or the cached
    :func:`get_settings`). Only ``debug`` may be reassigned; the sections are fixed."""

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    environment: Environment = Field(default=Environment.DEVELOPMENT, frozen=True)
    debug: bool = False
    kafka: KafkaSettings = Field(frozen=True)
    database: DatabaseSettings = Field(frozen=True)
    registry: RegistrySettings = Field(frozen=True)
    security: SecuritySettings = Field(frozen=True)
    logging: LoggingSettings = Field(frozen=True)
    messaging: MessagingSettings = Field(frozen=True)
    otel: OtelSettings = Field(frozen=True)

    def compliance_problems(self) -> list[str]:
        """The seed's financial-compliance rules, as it states them: audit retention, salt
        rounds and audit encryption always; database SSL and token expiry in production."""
        problems: list[str] = []
        if self.logging.audit_retention_days < MIN_AUDIT_RETENTION_DAYS:
            problems.append(
                f"LOG_AUDIT_RETENTION_DAYS={self.logging.audit_retention_days}: audit retention "
                f"must be at least {MIN_AUDIT_RETENTION_DAYS} days (7 years)"
            )
        if self.security.password_salt_rounds < MIN_PASSWORD_SALT_ROUNDS:
            problems.append(
                f"SECURITY_PASSWORD_SALT_ROUNDS={self.security.password_salt_rounds}: must be at "
                f"least {MIN_PASSWORD_SALT_ROUNDS}"
            )
        if not self.logging.audit_encryption_enabled:
            problems.append(
                "LOG_AUDIT_ENCRYPTION_ENABLED=false: audit log encryption must be enabled"
            )
        if self.environment is not Environment.PRODUCTION:
            return problems
        if not self.database.ssl_enabled:
            problems.append(
                f"database SSL is '{self.database.effective_ssl_mode}': set DB_SSL_MODE=require "
                "(or sslmode=require in DATABASE_URL) in production"
            )
        if self.security.access_token_expire_minutes > MAX_PRODUCTION_ACCESS_TOKEN_MINUTES:
            problems.append(
                "SECURITY_ACCESS_TOKEN_EXPIRE_MINUTES="
                f"{self.security.access_token_expire_minutes}: access tokens must expire within "
                f"{MAX_PRODUCTION_ACCESS_TOKEN_MINUTES} minutes in production"
            )
        if self.security.pii_kek is None:
            problems.append(
                "SECURITY_PII_KEK is not set: personal data must be encrypted by producers in "
                "production (32 bytes, base64 or hex; `streaming audit keygen` prints one)"
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


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once (the seed's entry point).

    Cached: every caller shares one :class:`Settings`. Tests that change the environment
    call :func:`reload_settings` (or ``get_settings.cache_clear()``) afterwards.
    """
    return load_settings()


def reload_settings() -> Settings:
    """Forget the cached settings and read the environment again."""
    get_settings.cache_clear()
    return get_settings()


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
    "get_settings",
    "load_settings",
    "parse_bootstrap_servers",
    "parse_db_hosts",
    "read_settings",
    "reload_settings",
]
