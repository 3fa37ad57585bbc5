"""Audit sink against a plain Kafka -> PostgreSQL sink and asyncpg COPY, side by side.

Not a test. Pre-fills a 3-partition topic with N audit events, runs the real sink once
(warm-up; its rows feed the COPY contender), then per round, interleaved:

- ``sink``: the real audit sink (consume, Avro decode, PII encryption, canonical JSON,
  HMAC chain, one transaction per partition batch with COPY) into a fresh schema;
- ``plain``: :mod:`bench.plain_sink`, the same consumer and decode, COPY, no chain, MAC
  or encryption: the goal's baseline (tamper evidence should cost under 30%);
- ``copy``: asyncpg ``copy_records_to_table`` of exactly the rows the sink stored, into an
  identical fresh table, in batches of the sink's batch size (no Kafka at all).

A sink that has not stored every event within ``--deadline`` lost records (round dropped).
Needs ``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL`` (``streaming dev up``).

    python -m bench.bench_audit_sink [--events 20000] [--batch 1000] [--rounds 3]
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr
from sqlalchemy import text

from bench import harness
from bench.harness import Run
from bench.plain_sink import run_plain_sink
from connectors.audit_sink.config import AuditSinkSettings
from connectors.audit_sink.runtime import build_store, running_sink
from connectors.audit_sink.writer import AUDIT_LOG_COLUMNS
from streaming.clients.producer import EventProducer
from streaming.config import DatabaseSettings, KafkaSettings
from streaming.db import Database
from streaming.events import Actor, ActorType, AuditEvent, AuditEventType, AuditOutcome
from streaming.serde.memory import InMemorySchemaRegistryClient
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


def settings(topic: str, schema: str, batch: int) -> AuditSinkSettings:
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


async def fill(transport: KafkaTransport, registry: Any, topic: str, n: int) -> None:
    async with EventProducer(transport, registry, linger_ms=20) as producer:
        for start in range(0, n, 1000):
            await producer.send_many(topic, [_event(i) for i in range(start, min(n, start + 1000))])


async def sink_rate(
    transport: KafkaTransport,
    database: Database,
    registry: Any,
    config: AuditSinkSettings,
    n: int,
    deadline_s: float,
    on_progress: Any = None,
    cpu_out: list[float] | None = None,
) -> tuple[float, int]:
    """Run the sink until it stored ``n`` rows (or the deadline); (rows/s, rows stored).

    ``on_progress(rows)`` is called at every sample (the memory bench reads RSS there);
    ``cpu_out`` gets the rows stored per CPU-second of this process over the same stretch.
    """
    async with running_sink(
        transport=transport, database=database, registry=registry, settings=config
    ) as sink:
        task = asyncio.create_task(sink.run())
        stop_at = time.monotonic() + deadline_s
        started, first, cpu_started = 0.0, 0, 0.0
        while sink.stats.rows < n and time.monotonic() < stop_at and not task.done():
            await asyncio.sleep(0.001 if on_progress is None else 0.05)  # poll
            if not started and sink.stats.rows:
                started, first = time.perf_counter(), sink.stats.rows
                cpu_started = time.process_time()
            if on_progress is not None:
                on_progress(sink.stats.rows)
        elapsed = time.perf_counter() - started
        cpu_s = time.process_time() - cpu_started
        rows = sink.stats.rows
        if cpu_out is not None and started and cpu_s > 0:
            cpu_out.append((rows - first) / cpu_s)
        sink.stop()
        await task
    return ((rows - first) / elapsed if started and elapsed else 0.0), rows


async def copy_rate(database: Database, source: str, target: str, batch: int) -> tuple[float, int]:
    async with database.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    f"SELECT {', '.join(AUDIT_LOG_COLUMNS)} FROM {source}.audit_log ORDER BY chain_id, seq"
                )
            )
        ).all()
    records = [tuple(r) for r in rows]
    store = build_store(database, settings("x", target, batch))
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
    return len(records) / elapsed, len(records)


async def measure(events: int, batch: int, rounds: int, deadline_s: float) -> dict[str, Any]:
    bootstrap = harness.env("KAFKA_BOOTSTRAP_SERVERS")
    database_url = harness.env("DATABASE_URL")
    transport = KafkaTransport(KafkaSettings(bootstrap_servers=bootstrap))
    database = Database(DatabaseSettings(url=SecretStr(database_url)))
    registry = InMemorySchemaRegistryClient()
    schemas: list[str] = []

    def schema() -> str:
        schemas.append(f"bench_audit_{uuid.uuid4().hex[:8]}")
        return schemas[-1]

    try:
        async with harness.topics(bootstrap) as make_topic:
            topic = await make_topic(3)
            await fill(transport, registry, topic, events)
            seed = schema()
            await sink_rate(
                transport, database, registry, settings(topic, seed, batch), events, deadline_s
            )

            def run(rate: float, rows: int, cpu: list[float]) -> Run:
                return Run(rate, expected=events, seen=rows, extra={"cpu": cpu[0]} if cpu else {})

            async def sink() -> Run:
                config = settings(topic, schema(), batch)
                cpu: list[float] = []
                rate, rows = await sink_rate(
                    transport, database, registry, config, events, deadline_s, cpu_out=cpu
                )
                return run(rate, rows, cpu)

            async def plain() -> Run:
                cpu: list[float] = []
                rate, rows = await run_plain_sink(
                    transport,
                    registry,
                    database_url,
                    topic,
                    events,
                    batch=batch,
                    deadline_s=deadline_s,
                    cpu_out=cpu,
                )
                return run(rate, rows, cpu)

            async def copy() -> Run:
                rate, rows = await copy_rate(database, seed, schema(), batch)
                return Run(rate, expected=events, seen=rows)

            got = await harness.interleave({"sink": sink, "plain": plain, "copy": copy}, rounds)
    finally:
        async with database.connect() as conn:
            for name in schemas:
                await conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
            await conn.commit()
        await database.close()
    return {
        "params": {"events": events, "batch": batch, "rounds": rounds},
        "rows": [
            got.ratio("audit sink ÷ plain sink", "sink", "plain"),
            got.ratio("audit sink ÷ COPY", "sink", "copy"),
            got.ratio("plain sink ÷ COPY", "plain", "copy"),
            got.ratio("audit sink ÷ plain sink, per CPU-second", "sink cpu", "plain cpu"),
            got.measure("audit sink rows per CPU-second", "sink cpu", "rows/CPU-s"),
            got.measure("plain sink rows per CPU-second", "plain cpu", "rows/CPU-s"),
        ],
        **got.summary(),
    }


@app.command()
def main(
    events: int = typer.Option(20_000, min=10, help="Audit events to sink."),
    batch: int = typer.Option(1000, min=1, help="Sink batch size (and COPY batch size)."),
    rounds: int = typer.Option(3, min=1, help="Interleaved rounds (median of ratios)."),
    deadline: float = typer.Option(120.0, help="Seconds a sink gets to store them all."),
    out: Path | None = harness.OUT_OPTION,
) -> None:
    harness.run("audit_sink", measure(events, batch, rounds, deadline), out)


if __name__ == "__main__":
    app()
