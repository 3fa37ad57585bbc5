"""Settings: env parsing, compliance rules in production, secrets kept out of repr."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from streaming.config import (
    DatabaseSettings,
    Environment,
    LoggingSettings,
    get_settings,
    load_settings,
    parse_bootstrap_servers,
    reload_settings,
)
from streaming.core.topics import audit_events_config
from streaming.errors import ConfigError

COMPLIANT_PRODUCTION = {
    "ENVIRONMENT": "production",
    "DB_SSL_MODE": "require",
    "LOG_AUDIT_RETENTION_DAYS": "2555",
    "SECURITY_PASSWORD_SALT_ROUNDS": "12",
    "SECURITY_ACCESS_TOKEN_EXPIRE_MINUTES": "60",
    "LOG_AUDIT_ENCRYPTION_ENABLED": "true",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "KAFKA_BOOTSTRAP_SERVERS",
        "DATABASE_URL",
        "REGISTRY_URL",
        "ENVIRONMENT",
        "SECURITY_JWT_SECRET_KEY",
        "SECURITY_JWT_PRIVATE_KEY_PEM",
        "SECURITY_JWT_ALGORITHM",
    ):
        monkeypatch.delenv(name, raising=False)


def production(monkeypatch: pytest.MonkeyPatch, **overrides: str) -> None:
    for key, value in {**COMPLIANT_PRODUCTION, **overrides}.items():
        monkeypatch.setenv(key, value)


def test_development_defaults_load() -> None:
    settings = load_settings()
    assert settings.environment is Environment.DEVELOPMENT
    assert settings.kafka.bootstrap_list == ["127.0.0.1:9092"]


def test_development_may_skip_only_the_production_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_SSL_MODE", "disable")
    monkeypatch.setenv("SECURITY_ACCESS_TOKEN_EXPIRE_MINUTES", "600")
    assert load_settings().security.access_token_expire_minutes == 600


@pytest.mark.parametrize("environment", ["development", "staging", "production"])
@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("LOG_AUDIT_RETENTION_DAYS", "30", "LOG_AUDIT_RETENTION_DAYS=30"),
        ("SECURITY_PASSWORD_SALT_ROUNDS", "10", "SECURITY_PASSWORD_SALT_ROUNDS=10"),
        ("LOG_AUDIT_ENCRYPTION_ENABLED", "false", "LOG_AUDIT_ENCRYPTION_ENABLED=false"),
    ],
)
def test_retention_salt_rounds_and_audit_encryption_bind_everywhere(
    monkeypatch: pytest.MonkeyPatch, environment: str, variable: str, value: str, expected: str
) -> None:
    """The seed states these three without "in production"."""
    production(monkeypatch, ENVIRONMENT=environment, **{variable: value})
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert len(info.value.problems) == 1
    assert expected in info.value.problems[0]


def test_compliant_production_config_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch)
    assert load_settings().environment is Environment.PRODUCTION


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("LOG_AUDIT_RETENTION_DAYS", "2554", "LOG_AUDIT_RETENTION_DAYS=2554"),
        ("DB_SSL_MODE", "prefer", "database SSL"),
        ("SECURITY_PASSWORD_SALT_ROUNDS", "11", "SECURITY_PASSWORD_SALT_ROUNDS=11"),
        ("SECURITY_ACCESS_TOKEN_EXPIRE_MINUTES", "61", "SECURITY_ACCESS_TOKEN_EXPIRE_MINUTES=61"),
        ("LOG_AUDIT_ENCRYPTION_ENABLED", "false", "LOG_AUDIT_ENCRYPTION_ENABLED=false"),
    ],
)
def test_each_compliance_rule_rejects_bad_production_config(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    production(monkeypatch, **{variable: value})
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert len(info.value.problems) == 1
    assert expected in info.value.problems[0]


def test_every_violated_rule_is_listed_in_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    production(
        monkeypatch,
        LOG_AUDIT_RETENTION_DAYS="1",
        DB_SSL_MODE="disable",
        SECURITY_PASSWORD_SALT_ROUNDS="4",
        SECURITY_ACCESS_TOKEN_EXPIRE_MINUTES="120",
        LOG_AUDIT_ENCRYPTION_ENABLED="false",
    )
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert len(info.value.problems) == 5
    assert "5 problems" in str(info.value)


def test_ssl_from_database_url_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch, DB_SSL_MODE="disable")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db.example:5432/x?sslmode=require")
    assert load_settings().database.ssl_enabled


def test_invalid_values_are_all_reported_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "localhost")
    monkeypatch.setenv("DB_PORT", "not-a-port")
    monkeypatch.setenv("ENVIRONMENT", "prod")
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = "\n".join(info.value.problems)
    assert "KAFKA_BOOTSTRAP_SERVERS" in text
    assert "DB_PORT" in text
    assert "ENVIRONMENT='prod'" in text


@pytest.mark.parametrize(
    "value", ["", "localhost", "host:0", "host:99999", "kafka://h:9092", "h:9092,nohost"]
)
def test_malformed_bootstrap_servers_rejected(value: str) -> None:
    with pytest.raises(ValueError, match=r"host:port|empty|scheme"):
        parse_bootstrap_servers(value)


def test_bootstrap_servers_list_parsed() -> None:
    assert parse_bootstrap_servers(" a:1 , b:2 ") == ("a:1", "b:2")


def test_database_url_wins_over_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://alice:s3cret@pg:6543/ledger")
    monkeypatch.setenv("DB_HOST", "ignored")
    db = load_settings().database
    assert db.connection_url == "postgresql+asyncpg://alice:s3cret@pg:6543/ledger"
    assert db.display_url == "postgresql://alice:***@pg:6543/ledger"


def test_seed_db_variables_build_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_HOST", "db1")
    monkeypatch.setenv("DB_PORT", "5433")
    monkeypatch.setenv("DB_USERNAME", "trader")
    monkeypatch.setenv("DB_PASSWORD", "p@ss word")
    monkeypatch.setenv("DB_DATABASE", "books")
    db = load_settings().database
    assert db.connection_url == "postgresql+asyncpg://trader:p%40ss%20word@db1:5433/books"


def test_secrets_never_appear_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASSWORD", "hunter2-db")
    monkeypatch.setenv("SECURITY_JWT_SECRET_KEY", "hunter2-jwt")
    monkeypatch.setenv("SECURITY_PASSWORD_PEPPER", "hunter2-pepper")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2-url@h:5432/d")
    settings = load_settings()
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert "hunter2" not in text


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(Exception, match="frozen"):
        settings.kafka.bootstrap_servers = "x:1"  # type: ignore[misc]


def test_unknown_fields_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown settings section"):
        load_settings(nonsense={"a": 1})
    with pytest.raises(ConfigError, match="DB_NO_SUCH_FIELD"):
        load_settings(database={"no_such_field": 1})


def test_database_url_must_be_postgres() -> None:
    with pytest.raises(ValueError, match="postgresql://"):
        DatabaseSettings(url=SecretStr("mysql://x@y/z"))


def test_get_settings_is_cached_until_reloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_HOST", "first")
    first = reload_settings()
    assert get_settings() is first
    monkeypatch.setenv("DB_HOST", "second")
    assert get_settings().database.hosts[0][0] == "first"
    get_settings.cache_clear()
    assert get_settings().database.hosts[0][0] == "second"
    assert reload_settings() is not first
    get_settings.cache_clear()


def test_a_lone_jwt_secret_means_hs256(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECURITY_JWT_SECRET_KEY", "s" * 40)
    assert load_settings().security.jwt_algorithm == "HS256"
    monkeypatch.setenv("SECURITY_JWT_PRIVATE_KEY_PEM", "a pem")
    assert load_settings().security.jwt_algorithm == "EdDSA"
    monkeypatch.setenv("SECURITY_JWT_ALGORITHM", "ES256")
    assert load_settings().security.jwt_algorithm == "ES256"


def test_no_jwt_key_keeps_the_asymmetric_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECURITY_JWT_SECRET_KEY", raising=False)
    assert load_settings().security.jwt_algorithm == "EdDSA"


def test_seed_debug_mode_assignments_work_and_validate() -> None:
    settings = load_settings()
    settings.debug = True
    settings.logging.level = "debug"  # type: ignore[assignment]  # validated, upper-cased
    assert (settings.debug, settings.logging.level) == (True, "DEBUG")
    with pytest.raises(ValidationError):
        settings.logging.level = "LOUD"  # type: ignore[assignment]
    with pytest.raises(ValidationError):
        settings.logging.audit_retention_days = 1
    with pytest.raises(ValidationError):
        settings.database = settings.database


@pytest.mark.parametrize(
    ("env", "hosts"),
    [
        ({"DB_HOST": "a,b"}, (("a", 5432), ("b", 5432))),
        ({"DB_HOST": "a:6000, b", "DB_PORT": "7000"}, (("a", 6000), ("b", 7000))),
        (
            {"DATABASE_URL": "postgresql://u:pw@h1:5433,h2,[::1]:5434/db?sslmode=require"},
            (("h1", 5433), ("h2", 5432), ("::1", 5434)),
        ),
    ],
)
def test_several_database_hosts_are_read_in_order(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], hosts: tuple[tuple[str, int], ...]
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    db = load_settings().database
    assert db.hosts == hosts
    assert db.host_url(1).startswith("postgresql+asyncpg://")
    assert f"@{hosts[1][0]}:{hosts[1][1]}/" in db.host_url(1)
    assert "pw" not in db.display_host_url(0)


def test_multi_host_url_keeps_credentials_and_ssl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:pw@h1:5433,h2:5434/db?sslmode=require")
    db = load_settings().database
    assert db.host_url(1) == "postgresql+asyncpg://u:pw@h2:5434/db"
    assert db.connection_url == "postgresql+asyncpg://u:pw@h1:5433/db"
    assert db.ssl_enabled


@pytest.mark.parametrize("value", ["a,:5432", "a:port", "a:70000", ","])
def test_bad_database_hosts_are_config_errors(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("DB_HOST", value)
    with pytest.raises(ConfigError, match="DB_HOST"):
        load_settings()


def test_audit_retention_days_become_the_audit_topic_retention() -> None:
    config = audit_events_config(LoggingSettings(audit_retention_days=3000).audit_retention_days)
    assert config["retention.ms"] == str(3000 * 86_400_000)
    assert config["cleanup.policy"] == "delete"
