"""The platform document's Configuration, Database, Security, Authentication-Flow,
Database-health, Database-metrics and Debug-Mode examples, run as written.

Each block below is copied verbatim from ``../shared/seed/``; the only edit :func:`run`
makes is ``from src.infrastructure import`` -> ``from streaming import``. Blocks run as
the body of an ``async def`` (the seed uses top-level ``await``) whose globals start as
``from streaming import *`` (the seed's Security block uses ``ResourceType``/``Action``
without importing them, as its Complete Service Integration example does) plus the
values the document leaves to the reader (``user_id``, ``session_manager``, ...).
Configuration comes only from the seed's environment variables, pointed at the shared
stack's PostgreSQL (``DATABASE_URL`` is split into ``DB_HOST`` & co. and removed).
Where the seed's example values are unusable (a 23-byte "256-bit" JWT secret, a 28-byte
"32-byte" key) real values of the documented kind are used.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient as ConfluentRegistry
from confluent_kafka.schema_registry.avro import AvroDeserializer as ConfluentDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from sqlalchemy.ext.asyncio import AsyncSession

import streaming
from streaming import (
    AuditLogger,
    AuthenticationError,
    EventProducer,
    SchemaRegistryClient,
    get_settings,
)
from streaming.core.topics import audit_events_config
from streaming.security import AccessDenied
from streaming.testing import eventually_sync
from streaming.transport.base import AdminTransport, TopicSpec
from streaming.transport.kafka import KafkaTransport

from .conftest import OUR_IMPORT, SEED_IMPORT, run_block

# --- the seed's blocks, verbatim -----------------------------------------------------

CONFIGURATION = """
from src.infrastructure import get_settings

settings = get_settings()
print(f"Database URL: {settings.database.connection_url}")
print(f"JWT Algorithm: {settings.security.jwt_algorithm}")
"""

DATABASE = """
from src.infrastructure import DatabaseConnectionManager, TransactionManager

# Initialize database
db_manager = DatabaseConnectionManager(settings.database)
await db_manager.initialize()

# Use transactions
transaction_manager = TransactionManager(session_manager)
async with transaction_manager.transaction() as session:
    # Database operations here
    pass
"""

SECURITY = """
from src.infrastructure import JWTManager, RoleBasedAccessControl, SecureHasher

# JWT Management
jwt_manager = JWTManager(settings.security)
token = await jwt_manager.create_access_token(user_id, permissions, context)

# Role-Based Access Control
rbac = RoleBasedAccessControl()
await rbac.require_permission(user_id, ResourceType.ORDER, Action.CREATE)

# Secure Hashing
hasher = SecureHasher(settings.security)
password_hash = hasher.hash_password("password123")
"""

AUTHENTICATION_FLOW = """
async def authenticate_user(username, password, ip_address):
    # Create execution context
    context = ExecutionContext.create_for_system("authenticate_user")

    # Verify password
    hasher = SecureHasher(settings.security)
    if not hasher.verify_password(password, stored_hash):
        # Log failed attempt
        await audit_logger.log_authentication_event(
            AuditEventType.LOGIN_FAILED,
            user_id=None,
            success=False,
            ip_address=ip_address,
            failure_reason="Invalid password",
        )
        raise AuthenticationError("Invalid credentials")

    # Create tokens
    access_token = await jwt_manager.create_access_token(
        user_id=user_id,
        permissions=user_permissions,
        execution_context=context,
    )

    # Log successful login
    await audit_logger.log_authentication_event(
        AuditEventType.USER_LOGIN,
        user_id=user_id,
        success=True,
        ip_address=ip_address,
    )

    return access_token
"""

# "Health Check Endpoints", its database part (the rest is the event bus and a cache).
DATABASE_HEALTH = """
# Database health
health_status = await db_manager.get_health_status()
# Returns: {"healthy": true, "response_time_ms": 15.2, "pool_status": {...}}
"""

# "Metrics Collection", its database part (the event bus part belongs to the bus tests).
DATABASE_METRICS = """
# Database metrics
db_health = await db_manager.get_health_status()
print(f"Pool size: {db_health['pool_status']['pool_size']}")
print(f"Active connections: {db_health['pool_status']['checked_out']}")
"""

DEBUG_MODE = """
settings = get_settings()
settings.debug = True
settings.logging.level = "DEBUG"
configure_logging(settings.logging)
"""

# --- running them ----------------------------------------------------------------------

JWT_SECRET = "a-real-256-bit-secret-for-the-seed-tests-0123456789"
ENCRYPTION_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # base64 of 32 bytes


def namespace(**values: Any) -> dict[str, Any]:
    """Globals of a reader's module: ``from streaming import *`` and their own values."""
    ns: dict[str, Any] = {}
    exec("from streaming import *", ns)
    ns.update(values)
    return ns


async def run(block: str, ns: dict[str, Any]) -> dict[str, Any]:
    """Run the seed's ``block`` (import line swapped) in ``ns``; its names join ``ns``."""
    return await run_block(block.replace(SEED_IMPORT, OUR_IMPORT), ns)


@pytest.fixture
def seed_env(
    monkeypatch: pytest.MonkeyPatch, database_settings: Any, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """The seed's "Environment Variables", pointed at the shared stack."""
    assert database_settings.url is not None
    url = urlsplit(database_settings.url.get_secret_value())
    env = {
        "DB_HOST": url.hostname or "127.0.0.1",
        "DB_PORT": str(url.port or 5432),
        "DB_USERNAME": url.username or "postgres",
        "DB_PASSWORD": url.password or "",
        "DB_DATABASE": url.path.lstrip("/"),
        "SECURITY_JWT_SECRET_KEY": JWT_SECRET,
        "SECURITY_PASSWORD_PEPPER": "your-pepper-value",
        "SECURITY_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "LOG_AUDIT_RETENTION_DAYS": "2555",
        "MESSAGING_EVENT_BUS_TYPE": "in_memory",
        "MESSAGING_OUTBOX_ENABLED": "true",
    }
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for key in ("SECURITY_JWT_ALGORITHM", "SECURITY_JWT_PRIVATE_KEY_PEM", "ENVIRONMENT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # Where roles come from is the reader's choice; here a policy file (SECURITY_RBAC_*).
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "roles:\n  trader: {permissions: ['order:create']}\nusers: {trader-1: [trader]}\n"
    )
    monkeypatch.setenv("SECURITY_RBAC_POLICY_PATH", str(policy))
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


async def test_configuration_database_health_and_metrics(
    seed_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ns = namespace()
    await run(CONFIGURATION, ns)
    printed = [x for x in capsys.readouterr().out.splitlines() if x.startswith(("Database", "JWT"))]
    host = f"{seed_env['DB_HOST']}:{seed_env['DB_PORT']}/{seed_env['DB_DATABASE']}"
    assert printed[0].startswith("Database URL: postgresql+asyncpg://")
    assert printed[0].endswith(f"@{host}")
    assert printed[1] == "JWT Algorithm: HS256"

    # The seed leaves session_manager to the reader: another manager on the same settings.
    ns["session_manager"] = streaming.DatabaseConnectionManager(ns["settings"].database)
    try:
        found = await run(DATABASE, ns)
        assert isinstance(found["session"], AsyncSession)
        assert found["db_manager"].hosts[0].display_url.endswith(host)

        health = (await run(DATABASE_HEALTH, ns))["health_status"]
        assert health["healthy"] is True
        assert isinstance(health["response_time_ms"], float)
        assert health["response_time_ms"] >= 0
        assert {"pool_size", "checked_out"} <= set(health["pool_status"])

        await run(DATABASE_METRICS, ns)
        out = capsys.readouterr().out.splitlines()
        pool_size, active = [x for x in out if x.startswith(("Pool size", "Active connections"))]
        assert pool_size == "Pool size: 10"  # DB_POOL_SIZE's default
        assert active == "Active connections: 0"  # the health check's connection is back
    finally:
        await ns["session_manager"].close()
        if "db_manager" in ns:
            await ns["db_manager"].close()


async def test_security_block_issues_checks_and_hashes(seed_env: dict[str, str]) -> None:
    context = streaming.ExecutionContext.create_for_system("seed-security")
    ns = namespace(settings=get_settings(), user_id="trader-1", permissions=["order:create"])
    ns["context"] = context
    found = await run(SECURITY, ns)

    claims = await found["jwt_manager"].verify_access_token(found["token"])
    assert claims.subject == "trader-1"
    assert [str(p) for p in claims.permissions] == ["order:*:create"]
    assert claims.context["correlation_id"] == context.correlation_id
    assert found["hasher"].verify_password("password123", found["password_hash"])
    assert ",t=3," in found["password_hash"]  # SECURITY_PASSWORD_SALT_ROUNDS=12

    ns["user_id"] = "stranger"  # the documented refusal
    with pytest.raises(AccessDenied):
        await run(SECURITY, ns)


@pytest.fixture
async def audit_logger(
    kafka_transport: KafkaTransport,
    kafka_admin: AdminTransport,
    registry_url: str,
    seed_env: dict[str, str],
) -> AsyncIterator[tuple[AuditLogger, str]]:
    del seed_env
    topic = f"audit.seed.{uuid.uuid4().hex[:8]}"
    await kafka_admin.create_topics([TopicSpec(topic, 1, config=audit_events_config(2555))])
    registry = SchemaRegistryClient(
        get_settings().registry.model_copy(update={"url": registry_url})
    )
    async with EventProducer(kafka_transport, registry) as producer:
        yield AuditLogger(producer, topic=topic), topic
    await registry.aclose()
    await kafka_admin.delete_topics([topic])


def audit_events_on(bootstrap: str, registry_url: str, topic: str) -> list[dict[str, Any]]:
    """The audit events on ``topic``, read with confluent-kafka's own Avro deserializer."""
    decode = ConfluentDeserializer(ConfluentRegistry({"url": registry_url}))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"seed-{uuid.uuid4()}"})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        found: list[dict[str, Any]] = []
        while (msg := consumer.poll(2.0)) is not None:
            if msg.error() is None:
                found.append(decode(msg.value(), SerializationContext(topic, MessageField.VALUE)))
        return found
    finally:
        consumer.close()


async def test_authentication_flow_logs_in_and_refuses_a_bad_password(
    seed_env: dict[str, str],
    audit_logger: tuple[AuditLogger, str],
    kafka_settings: Any,
    registry_url: str,
) -> None:
    settings = get_settings()
    hasher = streaming.SecureHasher(settings.security)
    jwt_manager = streaming.JWTManager(settings.security)
    logger, topic = audit_logger
    ns = namespace(
        settings=settings,
        stored_hash=hasher.hash_password("correct horse battery"),
        audit_logger=logger,
        jwt_manager=jwt_manager,
        user_id="trader-1",
        user_permissions=["order:create"],
    )
    await run(AUTHENTICATION_FLOW, ns)
    authenticate_user = ns["authenticate_user"]

    token = await authenticate_user("trader", "correct horse battery", "10.0.0.7")
    claims = await jwt_manager.verify_access_token(token)
    assert claims.subject == "trader-1"
    assert claims.context["operation"] == "authenticate_user"
    with pytest.raises(AuthenticationError, match="Invalid credentials"):
        await authenticate_user("trader", "wrong", "10.0.0.7")

    events: list[dict[str, Any]] = []

    def both_logged() -> bool:
        events[:] = audit_events_on(kafka_settings.bootstrap_servers, registry_url, topic)
        return len(events) == 2

    eventually_sync(both_logged, timeout_s=20, what="both authentication audit events")
    login, failed = sorted(events, key=lambda e: str(e["event_type"]) != "USER_LOGIN")
    assert (login["event_type"], login["outcome"]) == ("USER_LOGIN", "SUCCESS")
    assert (failed["event_type"], failed["outcome"]) == ("LOGIN_FAILED", "FAILURE")
    assert failed["details"]["failure_reason"] == "Invalid password"


async def test_debug_mode_turns_debug_logs_on(
    seed_env: dict[str, str], restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = namespace()
    found = await run(DEBUG_MODE, ns)
    assert found["settings"] is get_settings()  # the cached settings were changed
    assert get_settings().debug is True
    assert logging.getLogger().level == logging.DEBUG
    streaming.get_logger("seed").debug("debugging", detail=42)
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    assert any(x["event"] == "debugging" and x["level"] == "debug" for x in lines)
