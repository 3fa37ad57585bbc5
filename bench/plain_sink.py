"""The audit sink's baseline: a plain Kafka -> PostgreSQL sink of the same records.

Same consumer settings and Avro deserializer as the audit sink, one COPY per polled
batch in a transaction, then the Kafka offsets are committed (at least once). No hash
chain, no MAC, no encryption, no checkpoints: what tamper evidence is measured against.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import asyncpg

from streaming.serde.avro import AvroDeserializer
from streaming.serde.client import SchemaRegistry
from streaming.serde.context import SerializationContext
from streaming.transport.base import TransportFactory

COLUMNS = ("topic", "kafka_partition", "kafka_offset", "event_id", "occurred_at", "payload")


async def create_table(conn: Any, table: str) -> None:
    await conn.execute(
        f"CREATE TABLE {table} (topic text NOT NULL, kafka_partition int NOT NULL,"
        " kafka_offset bigint NOT NULL, event_id text NOT NULL, occurred_at bigint NOT NULL,"
        " payload bytea NOT NULL, PRIMARY KEY (topic, kafka_partition, kafka_offset))"
    )


async def run_plain_sink(
    transport: TransportFactory,
    registry: SchemaRegistry,
    database_url: str,
    topic: str,
    n: int,
    *,
    batch: int,
    deadline_s: float,
    cpu_out: list[float] | None = None,
) -> tuple[float, int]:
    """Sink ``n`` records of ``topic`` into a fresh table; (rows/s from the first row, rows).

    ``cpu_out`` gets the rows stored per CPU-second of this process over the same stretch.
    """
    table = f"bench_plain_{uuid.uuid4().hex[:8]}"
    deserializer = AvroDeserializer(registry, use_local_schemas=True)
    consumer = transport.consumer(
        group_id=f"bench-plain-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        max_poll_records=batch,
    )
    conn = await asyncpg.connect(database_url)
    await create_table(conn, table)
    await consumer.start()
    consumer.subscribe([topic])
    done, first, first_rows, cpu_first = 0, 0.0, 0, 0.0
    stop_at = time.monotonic() + deadline_s
    try:
        while done < n and time.monotonic() < stop_at:
            polled = await consumer.poll(timeout_ms=500, max_records=batch)
            rows = []
            offsets = {}
            for tp, records in polled.items():
                for record in records:
                    if record.value is None:  # a tombstone: nothing to store
                        continue
                    decoded = await deserializer.deserialize(
                        record.value, SerializationContext.for_record(record)
                    )
                    value = decoded.value
                    rows.append(
                        (
                            record.topic,
                            record.partition,
                            record.offset,
                            str(value["metadata"]["event_id"]),
                            int(value["metadata"]["occurred_at"].timestamp() * 1000),
                            json.dumps(value, default=str).encode(),
                        )
                    )
                offsets[tp] = records[-1].offset + 1
            if not rows:
                continue
            async with conn.transaction():
                await conn.copy_records_to_table(table, columns=COLUMNS, records=rows)
            await consumer.commit(offsets)
            done += len(rows)
            if not first:  # like the audit sink's rate: from the first batch written
                first, first_rows = time.perf_counter(), done
                cpu_first = time.process_time()
        elapsed = time.perf_counter() - first if first else 0.0
        cpu_s = time.process_time() - cpu_first
        if cpu_out is not None and first and cpu_s > 0:
            cpu_out.append((done - first_rows) / cpu_s)
        return ((done - first_rows) / elapsed if elapsed else 0.0), done
    finally:
        await consumer.stop()
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()
