"""Audit sink throughput vs. raw asyncpg COPY, and the price of hashing, side by side.

Not a test. Pre-fills a 3-partition topic with N audit events, then:

- **sink**: the real sink (Kafka consume, Avro decode, PII encryption, canonical JSON,
  HMAC chain, one PG transaction per partition batch with COPY) into a fresh schema;
- **copy**: asyncpg ``copy_records_to_table`` of exactly the rows the sink stored, into
  an identical fresh table (same indexes), in batches of the sink's batch size;
- **sink, hashing off**: the same sink with the row MAC replaced by a constant.

Needs ``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL`` (or ``streaming dev up``).

    .venv/bin/python bench/bench_audit_sink.py [--events 20000] [--batch 1000] [--json]
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import time
import uuid
from typing import Any

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

import streaming.audit_chain as audit_chain
from connectors.audit_sink.config import AuditSinkSettings
from connectors.audit_sink.runtime import build_store, running_sink
from connectors.audit_sink.store import AUDIT_LOG_COLUMNS
from streaming.config import DatabaseSettings, KafkaSettings
from streaming.db import Database
from streaming.events import Actor, ActorType, AuditEvent, AuditEventType, AuditOutcome
from streaming.producer import EventProducer
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.transport.base import TopicSpec
from streaming.transport.kafka import KafkaTransport

app = typer.Typer(add_completion=False)


def _event(i: int) -> AuditEvent:
    return AuditEvent(
        event_type=AuditEventType.ORDER_PLACED,
        actor=Actor(
            actor_type=ActorType.USER, actor_id=f"user-{i % 97}", username=f"User {i % 97}"
        ),
        resource_type="order",
        resource_id=f"order-{i}",
        action="place_order",
        outcome=AuditOutcome.SUCCESS,
        details={"symbol": "AAPL", "qty": str(i % 100)},
        ip_address=f"10.0.{i % 250}.{i % 7}",
    )


def _settings(topic: str, schema: str, batch: int) -> AuditSinkSettings:
    private = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return AuditSinkSettings(
        topics=topic,
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        db_schema=schema,
        checkpoint_topic=f"bench-cp-{uuid.uuid4().hex[:8]}",
        batch_max_rows=batch,
        batch_max_latency_ms=50,
        checkpoint_every_rows=10**9,
        checkpoint_every_s=3600,
        mac_keys=f"k1:{secrets.token_urlsafe(32)}",
        signing_key=base64.b64encode(private).decode(),
        kek=secrets.token_urlsafe(32),
    )


async def _sink_rate(
    transport: KafkaTransport,
    database: Database,
    registry: InMemorySchemaRegistryClient,
    settings: AuditSinkSettings,
    n: int,
) -> float:
    async with running_sink(
        transport=transport, database=database, registry=registry, settings=settings
    ) as sink:
        task = asyncio.create_task(sink.run())
        while sink.stats.rows == 0:  # noqa: ASYNC110 - sampling a counter
            await asyncio.sleep(0.001)  # poll
        started, first = time.perf_counter(), sink.stats.rows
        while sink.stats.rows < n:  # noqa: ASYNC110 - sampling a counter
            await asyncio.sleep(0.001)  # poll
        elapsed = time.perf_counter() - started
        sink.stop()
        await task
    return (n - first) / elapsed


async def _copy_rate(database: Database, source: str, target: str, batch: int) -> float:
    async with database.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    f"SELECT {', '.join(AUDIT_LOG_COLUMNS)} FROM {source}.audit_log ORDER BY chain_id, seq"
                )
            )
        ).all()
    records = [tuple(r) for r in rows]
    store = build_store(database, _settings("x", target, batch))
    await store.migrate()
    async with store.connection() as raw:
        started = time.perf_counter()
        for i in range(0, len(records), batch):
            async with raw.transaction():
                await raw.copy_records_to_table(
                    "audit_log",
                    schema_name=target,
                    columns=AUDIT_LOG_COLUMNS,
                    records=records[i : i + batch],
                )
        elapsed = time.perf_counter() - started
    return len(records) / elapsed


async def _main(events: int, batch: int) -> dict[str, Any]:
    kafka = KafkaSettings(bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"])
    database = Database(DatabaseSettings(url=SecretStr(os.environ["DATABASE_URL"])))
    transport = KafkaTransport(kafka)
    registry = InMemorySchemaRegistryClient()
    topic = f"bench-audit-{uuid.uuid4().hex[:8]}"
    schemas = [f"bench_audit_{uuid.uuid4().hex[:8]}" for _ in range(3)]
    admin = transport.admin()
    await admin.start()
    try:
        await admin.create_topics([TopicSpec(topic, 3)])
        async with EventProducer(transport, registry, linger_ms=20) as producer:
            for start in range(0, events, 1000):
                await producer.send_many(
                    topic, [_event(i) for i in range(start, min(events, start + 1000))]
                )
        sink = await _sink_rate(
            transport, database, registry, _settings(topic, schemas[0], batch), events
        )
        copy = await _copy_rate(database, schemas[0], schemas[1], batch)
        real_mac = audit_chain.row_mac
        audit_chain.row_mac = lambda key, **_: b"\x00" * 32  # type: ignore[assignment]
        try:
            unhashed = await _sink_rate(
                transport, database, registry, _settings(topic, schemas[2], batch), events
            )
        finally:
            audit_chain.row_mac = real_mac
    finally:
        async with database.connect() as conn:
            for schema in schemas:
                await conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            await conn.commit()
        await admin.delete_topics([topic])
        await admin.stop()
        await database.close()
    return {
        "events": events,
        "batch": batch,
        "sink_rows_per_s": round(sink),
        "copy_rows_per_s": round(copy),
        "sink_over_copy": round(sink / copy, 3),
        "sink_hashing_off_rows_per_s": round(unhashed),
        "hashing_on_over_off": round(sink / unhashed, 3),
    }


@app.command()
def main(
    events: int = typer.Option(20000, help="Audit events to sink."),
    batch: int = typer.Option(1000, help="Sink batch size (and COPY batch size)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    result = asyncio.run(_main(events, batch))
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=f"audit sink, {events} events, batch {batch}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, str(value))
    Console().print(table)


if __name__ == "__main__":
    app()
