"""Audit sink fixtures: fresh keys, a private PostgreSQL schema and topics per test."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr
from sqlalchemy import text

from connectors.audit_sink.config import AuditSinkSettings
from connectors.audit_sink.runtime import running_sink
from connectors.audit_sink.sink import AuditSink
from streaming.clients.producer import EventProducer
from streaming.config import DatabaseSettings
from streaming.db import Database
from streaming.errors import DatabaseError
from streaming.events import Actor, ActorType, AuditEvent, AuditEventType, AuditOutcome
from streaming.serde.client import SchemaRegistry
from streaming.testing import eventually
from streaming.transport.kafka import KafkaTransport
from tests.integration.test_database import TcpProxy

TopicFactory = Callable[..., Awaitable[str]]


def audit_env(settings: AuditSinkSettings) -> dict[str, str]:
    """The AUDIT_* variables that reproduce ``settings`` in a subprocess."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        env[f"AUDIT_{name.upper()}"] = str(raw).lower() if isinstance(raw, bool) else str(raw)
    return env


@dataclass
class AuditSetup:
    settings: AuditSinkSettings
    topic: str
    mac_key_b64: str


def make_audit_setup(topic: str, checkpoint_topic: str, **overrides: Any) -> AuditSetup:
    """Settings with fresh keys, a private schema and group, for ``topic``."""
    private = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    mac = secrets.token_urlsafe(32)
    values: dict[str, Any] = {
        "topics": topic,
        "group_id": f"audit-sink-{uuid.uuid4().hex[:8]}",
        "db_schema": f"audit_t{uuid.uuid4().hex[:10]}",
        "checkpoint_topic": checkpoint_topic,
        "batch_max_rows": 500,
        "batch_max_latency_ms": 100,
        "checkpoint_every_rows": 200,
        "checkpoint_every_s": 1.0,
        "backoff_initial_s": 0.1,
        "backoff_max_s": 1.0,
        "session_timeout_ms": 6000,
        "mac_keys": f"k1:{mac}",
        "signing_key": base64.b64encode(private).decode(),
        "kek": secrets.token_urlsafe(32),
        **overrides,
    }
    return AuditSetup(AuditSinkSettings(**values), topic, mac)


@pytest_asyncio.fixture
async def audit_setup(topic_factory: TopicFactory) -> AuditSetup:
    topic = await topic_factory(partitions=3, prefix="audit")
    checkpoints = await topic_factory(
        partitions=1, prefix="audit-cp", config={"cleanup.policy": "compact"}
    )
    return make_audit_setup(topic, checkpoints)


@pytest_asyncio.fixture
async def drop_schema(database: Database, audit_setup: AuditSetup) -> AsyncIterator[None]:
    yield
    async with database.connect() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {audit_setup.settings.db_schema} CASCADE"))
        await conn.commit()


def audit_event(i: int, *, user: str | None = None, username: str | None = None) -> AuditEvent:
    return AuditEvent(
        event_type=AuditEventType.ORDER_PLACED,
        actor=Actor(
            actor_type=ActorType.USER, actor_id=user or f"user-{i % 17}", username=username
        ),
        resource_type="order",
        resource_id=f"order-{i}",
        action="place_order",
        outcome=AuditOutcome.SUCCESS,
        details={"i": str(i)},
        ip_address=f"10.0.{i % 250}.{i % 7}",
    )


async def produce(
    transport: KafkaTransport, registry: SchemaRegistry, topic: str, events: list[AuditEvent]
) -> None:
    async with EventProducer(transport, registry, linger_ms=20) as producer:
        for start in range(0, len(events), 500):
            await producer.send_many(topic, events[start : start + 500])


async def count_rows(database: Database, schema: str) -> int:
    try:
        return int(await database.execute_scalar(f"SELECT count(*) FROM {schema}.audit_log"))
    except DatabaseError:  # the schema may not exist yet while polling
        return 0


async def run_until(
    sink: AuditSink, predicate: Callable[[], Awaitable[bool]], *, timeout_s: float, what: str
) -> None:
    """Run ``sink`` in a task until ``predicate`` holds, then stop it cleanly."""
    task = asyncio.create_task(sink.run())
    try:
        await eventually(
            lambda: _check(task, predicate), timeout_s=timeout_s, what=what, interval_s=0.1
        )
    finally:
        sink.stop()
        await task


async def _check(task: asyncio.Task[None], predicate: Callable[[], Awaitable[bool]]) -> bool:
    if task.done():
        task.result()  # surface the sink's exception
        raise AssertionError("the sink stopped on its own")
    return await predicate()


@dataclass
class Sunk:
    setup: AuditSetup
    schema: str
    chain: str
    length: int


@pytest_asyncio.fixture
async def sunk(
    kafka_transport: KafkaTransport,
    database: Database,
    memory_registry: SchemaRegistry,
    audit_setup: AuditSetup,
    drop_schema: None,
) -> AsyncIterator[Sunk]:
    settings = audit_setup.settings
    async with running_sink(
        transport=kafka_transport, database=database, registry=memory_registry, settings=settings
    ) as sink:
        for rnd in range(2):  # two rounds -> two checkpoints
            events = [audit_event(rnd * 30 + i) for i in range(30)]
            await produce(kafka_transport, memory_registry, audit_setup.topic, events)

            async def landed(n: int = 30 * (rnd + 1)) -> bool:
                return await count_rows(database, settings.db_schema) >= n

            await run_until(sink, landed, timeout_s=60, what="audit rows")
            await sink.checkpoint()
    schema = settings.db_schema
    async with database.connect() as conn:
        chain, length = (
            await conn.execute(
                text(
                    f"SELECT chain_id, count(*) FROM {schema}.audit_log "
                    "GROUP BY chain_id ORDER BY count(*) DESC, chain_id LIMIT 1"
                )
            )
        ).one()
    assert length >= 12
    yield Sunk(audit_setup, schema, chain, length)


async def tamper(database: Database, *statements: str, **params: Any) -> None:
    """Run ``statements`` as a superuser with triggers disabled (the attacker)."""
    async with database.connect() as conn:
        await conn.execute(text("SET session_replication_role = replica"))
        for sql in statements:
            await conn.execute(text(sql), params)
        await conn.commit()


def cli_env(settings: AuditSinkSettings, **extra: str) -> dict[str, str]:
    return {**os.environ, **audit_env(settings), "LOG_LEVEL": "WARNING", **extra}


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """``python -m streaming audit ARGS`` in a subprocess: exit code, stdout, stderr."""
    return await run_streaming("audit", *args, env=env)


async def run_streaming(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """``python -m streaming ARGS`` in a subprocess: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "streaming",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def export_args(
    out: Path, since: datetime | None = None, until: datetime | None = None
) -> list[str]:
    """``audit export`` args; by default from an hour ago to an hour ahead (everything)."""
    now = datetime.now(UTC)
    since = since or now - timedelta(hours=1)
    until = until or now + timedelta(hours=1)
    return ["export", "--since", since.isoformat(), "--until", until.isoformat(), "--out", str(out)]


@pytest_asyncio.fixture
async def proxied(  # the sink's own Database, through a proxy a test can cut
    database_settings: DatabaseSettings,
) -> AsyncIterator[tuple[TcpProxy, Database]]:
    url = urlsplit(database_settings.url.get_secret_value() if database_settings.url else "")
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 5432)
    await proxy.start()
    netloc = url.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    via = urlunsplit(url._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))
    db = Database(
        DatabaseSettings(
            url=SecretStr(via), connect_timeout_s=1, breaker_cooldown_s=0.5, pool_size=4
        )
    )
    try:
        yield proxy, db
    finally:
        await db.close()
        await proxy.stop()
