"""The pipelined sink (next batch prepared while PostgreSQL writes this one) under a
PostgreSQL cut mid-stream: batches land in Kafka order, nothing lost or duplicated."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from connectors.audit_sink.runtime import run_verify, running_sink
from streaming.db import Database
from streaming.serde.client import SchemaRegistry
from streaming.testing import eventually
from streaming.transport.kafka import KafkaTransport
from tests.integration.audit.conftest import AuditSetup, audit_event, count_rows, produce
from tests.integration.test_database import TcpProxy

EVENTS = 3000


async def test_a_cut_while_batches_are_in_flight_keeps_every_chain_in_kafka_order(
    kafka_transport: KafkaTransport,
    database: Database,
    memory_registry: SchemaRegistry,
    audit_setup: AuditSetup,
    proxied: tuple[TcpProxy, Database],
    drop_schema: None,
) -> None:
    proxy, sink_db = proxied
    # Small batches: many transactions, so the cut lands with one batch in flight and
    # the next one prepared behind it.
    settings = audit_setup.settings.model_copy(
        update={"batch_max_rows": 60, "batch_max_latency_ms": 20}
    )
    schema = settings.db_schema
    await produce(
        kafka_transport,
        memory_registry,
        audit_setup.topic,
        [audit_event(i) for i in range(EVENTS)],
    )
    async with running_sink(
        transport=kafka_transport, database=sink_db, registry=memory_registry, settings=settings
    ) as sink:
        task = asyncio.create_task(sink.run())
        try:

            async def writing() -> bool:
                assert not task.done()
                return sink.stats.rows >= 300

            await eventually(writing, timeout_s=60, what="the sink to be writing")
            await proxy.stop()  # mid-stream: transactions fail, prepared batches wait
            retries = sink.stats.database_retries

            async def backing_off() -> bool:
                assert not task.done()
                return sink.stats.database_retries > retries

            await eventually(backing_off, timeout_s=30, what="the sink to back off")
            written_while_down = await count_rows(database, schema)
            assert written_while_down < EVENTS
            await proxy.start()

            async def everything() -> bool:
                assert not task.done()
                return await count_rows(database, schema) >= EVENTS

            await eventually(everything, timeout_s=90, what=f"all {EVENTS} rows after the cut")
        finally:
            sink.stop()
            await task

    assert sink.stats.duplicates == 0
    async with database.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    f"SELECT chain_id, seq, kafka_offset, event_id FROM {schema}.audit_log "
                    "ORDER BY chain_id, seq"
                )
            )
        ).all()
    assert len(rows) == EVENTS
    assert len({r.event_id for r in rows}) == EVENTS
    chains: dict[str, list[tuple[int, int]]] = {}
    for r in rows:
        chains.setdefault(r.chain_id, []).append((r.seq, r.kafka_offset))
    for chain, links in chains.items():
        # seq 1..n over offsets 0..n-1: every record once, in the partition's order.
        assert links == [(i + 1, i) for i in range(len(links))], chain
    report = await run_verify(transport=kafka_transport, database=database, settings=settings)
    assert report.ok, report.to_dict()
    assert report.rows == EVENTS
