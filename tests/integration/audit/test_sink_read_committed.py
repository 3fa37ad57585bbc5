"""The audit sink chains committed audit events only (issue 17, item 1): an aborted
transactional write never becomes a row of the tamper-evident chain."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from connectors.audit_sink.runtime import running_sink
from streaming.db import Database
from streaming.producer import EventProducer
from streaming.serde.client import SchemaRegistry
from streaming.transport.kafka import KafkaTransport
from tests.integration.audit.conftest import AuditSetup, audit_event, count_rows, run_until
from tests.integration.transactional import write_aborted_and_committed

pytestmark = pytest.mark.usefixtures("drop_schema")
PAIRS = 10


async def test_aborted_audit_events_never_enter_the_chain(
    kafka_transport: KafkaTransport,
    database: Database,
    memory_registry: SchemaRegistry,
    audit_setup: AuditSetup,
) -> None:
    settings = audit_setup.settings
    builder = EventProducer(kafka_transport, memory_registry)  # serializes only
    events = [audit_event(i) for i in range(2 * PAIRS)]
    records = [await builder.build(audit_setup.topic, e, partition=0) for e in events]
    await asyncio.to_thread(
        write_aborted_and_committed,
        kafka_transport.settings.bootstrap_servers,
        records[1::2],
        records[0::2],
    )
    async with running_sink(
        transport=kafka_transport, database=database, registry=memory_registry, settings=settings
    ) as sink:

        async def chained() -> bool:  # the last committed event is the log's last record
            return await count_rows(database, settings.db_schema) >= PAIRS

        await run_until(sink, chained, timeout_s=60, what=f"{PAIRS} audit rows")
    async with database.connect() as conn:
        rows = (
            await conn.execute(
                text(f"SELECT event_id::text FROM {settings.db_schema}.audit_log ORDER BY seq")
            )
        ).all()
    assert [r[0] for r in rows] == [str(e.event_id) for e in events[1::2]]
