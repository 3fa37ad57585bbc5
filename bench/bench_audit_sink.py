"""Audit sink throughput vs. raw asyncpg COPY, and the price of hashing, side by side.

Not a test. Pre-fills a 3-partition topic with N audit events, then:

- **sink**: the real sink (Kafka consume, Avro decode, PII encryption, canonical JSON,
  HMAC chain, one PG transaction per partition batch with COPY) into a fresh schema;
- **copy**: asyncpg ``copy_records_to_table`` of exactly the rows the sink stored, into
  an identical fresh table (same indexes), in batches of the sink's batch size;
- **sink, hashing off**: the same sink with the row MAC replaced by a constant;
- **consume + decode**: the same Kafka client and Avro deserializer the sink uses, doing
  nothing else: the ceiling for any sink built on them (not a baseline the sink is
  judged against, but it says how much of the gap to COPY is the sink's own work).

With ``--rounds N`` every contender runs N times (alternating) and medians are reported.
Needs ``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL`` (or ``streaming dev up``).

    .venv/bin/python bench/bench_audit_sink.py [--events 20000] [--batch 1000] [--rounds 1] [--json]
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import statistics
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

import streaming.audit.chain as audit_chain
from connectors.audit_sink.config import AuditSinkSettings
from connectors.audit_sink.runtime import build_store, running_sink
from connectors.audit_sink.writer import AUDIT_LOG_COLUMNS
from streaming.clients.producer import EventProducer
from streaming.config import DatabaseSettings, KafkaSettings
from streaming.db import Database
from streaming.events import Actor, ActorType, AuditEvent, AuditEventType, AuditOutcome
from streaming.serde.avro import AvroDeserializer
from streaming.serde.context import SerializationContext
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.transport.base import TopicPartition, TopicSpec
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
    async with store.tables.connection() as raw:
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


async def _unhashed_rate(
    transport: KafkaTransport,
    database: Database,
    registry: InMemorySchemaRegistryClient,
    topic: str,
    schema: str,
    batch: int,
    n: int,
) -> float:
    """The sink with the row MAC replaced by a constant: what hashing costs."""
    real_mac = audit_chain.row_mac
    audit_chain.row_mac = lambda key, **_: b"\x00" * 32
    try:
        return await _sink_rate(transport, database, registry, _settings(topic, schema, batch), n)
    finally:
        audit_chain.row_mac = real_mac


async def _decode_rate(
    transport: KafkaTransport,
    registry: InMemorySchemaRegistryClient,
    topic: str,
    n: int,
    batch: int,
) -> float:
    """Consume and Avro-decode every record the way the sink does, and nothing else."""
    deserializer = AvroDeserializer(registry, use_local_schemas=True)
    consumer = transport.consumer(group_id=None, max_poll_records=batch)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(await consumer.partitions_for(topic))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        done, started = 0, 0.0
        while done < n:
            for records in (await consumer.poll(timeout_ms=1000, max_records=batch)).values():
                if not started:
                    started = time.perf_counter()
                for record in records:
                    await deserializer.deserialize(
                        record.value, SerializationContext.for_record(record)
                    )
                done += len(records)
        return n / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def _main(events: int, batch: int, rounds: int) -> dict[str, Any]:
    kafka = KafkaSettings(bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"])
    database = Database(DatabaseSettings(url=SecretStr(os.environ["DATABASE_URL"])))
    transport = KafkaTransport(kafka)
    registry = InMemorySchemaRegistryClient()
    topic = f"bench-audit-{uuid.uuid4().hex[:8]}"
    schemas = [f"bench_audit_{uuid.uuid4().hex[:8]}" for _ in range(3 * rounds)]
    sink: list[float] = []
    copy: list[float] = []
    unhashed: list[float] = []
    decode: list[float] = []
    admin = transport.admin()
    await admin.start()
    try:
        await admin.create_topics([TopicSpec(topic, 3)])
        async with EventProducer(transport, registry, linger_ms=20) as producer:
            for start in range(0, events, 1000):
                await producer.send_many(
                    topic, [_event(i) for i in range(start, min(events, start + 1000))]
                )
        for r in range(rounds):
            mine, copied, plain = schemas[3 * r : 3 * r + 3]
            # Odd rounds run the hashing-off sink first, so warm-up favours neither.
            for hashing in (True, False) if r % 2 == 0 else (False, True):
                if hashing:
                    sink.append(
                        await _sink_rate(
                            transport, database, registry, _settings(topic, mine, batch), events
                        )
                    )
                    copy.append(await _copy_rate(database, mine, copied, batch))
                else:
                    unhashed.append(
                        await _unhashed_rate(
                            transport, database, registry, topic, plain, batch, events
                        )
                    )
            decode.append(await _decode_rate(transport, registry, topic, events, batch))
    finally:
        async with database.connect() as conn:
            for schema in schemas:
                await conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            await conn.commit()
        await admin.delete_topics([topic])
        await admin.stop()
        await database.close()
    med = statistics.median
    return {
        "events": events,
        "batch": batch,
        "rounds": rounds,
        "sink_rows_per_s": round(med(sink)),
        "copy_rows_per_s": round(med(copy)),
        "sink_over_copy": round(med(s / c for s, c in zip(sink, copy, strict=True)), 3),
        "sink_hashing_off_rows_per_s": round(med(unhashed)),
        "hashing_on_over_off": round(med(s / u for s, u in zip(sink, unhashed, strict=True)), 3),
        "consume_decode_rows_per_s": round(med(decode)),
        "consume_decode_over_copy": round(med(d / c for d, c in zip(decode, copy, strict=True)), 3),
    }


@app.command()
def main(
    events: int = typer.Option(20000, help="Audit events to sink."),
    batch: int = typer.Option(1000, help="Sink batch size (and COPY batch size)."),
    rounds: int = typer.Option(1, min=1, help="Runs per contender; medians are reported."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    result = asyncio.run(_main(events, batch, rounds))
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
