"""PostgreSQL unreachable mid-stream: the sink backs off, resumes and loses nothing.

PostgreSQL is cut with a TCP proxy between the sink and the server (the shared server
keeps running). ``AUDIT_OUTAGE_S`` sets the outage length (the issue's figure is 20 s).
"""

from __future__ import annotations

import asyncio
import os

from connectors.audit_sink.runtime import run_verify, running_sink
from streaming.db import Database
from streaming.serde.client import SchemaRegistry
from streaming.testing import eventually
from streaming.transport.kafka import KafkaTransport
from tests.faults.report import FaultResult, record
from tests.integration.audit.conftest import (
    AuditSetup,
    audit_event,
    count_rows,
    produce,
)
from tests.integration.test_database import TcpProxy

OUTAGE_S = float(os.environ.get("AUDIT_OUTAGE_S", "4"))


async def test_database_outage_mid_stream_loses_nothing(
    kafka_transport: KafkaTransport,
    database: Database,
    memory_registry: SchemaRegistry,
    audit_setup: AuditSetup,
    proxied: tuple[TcpProxy, Database],
    drop_schema: None,
) -> None:
    proxy, sink_db = proxied
    settings = audit_setup.settings
    schema = settings.db_schema
    async with running_sink(
        transport=kafka_transport, database=sink_db, registry=memory_registry, settings=settings
    ) as sink:
        task = asyncio.create_task(sink.run())
        try:
            await produce(
                kafka_transport,
                memory_registry,
                audit_setup.topic,
                [audit_event(i) for i in range(300)],
            )

            async def first_wave() -> bool:
                return await count_rows(database, schema) >= 300

            await eventually(first_wave, timeout_s=60, what="the first 300 rows")
            await proxy.stop()  # PostgreSQL is now unreachable for the sink
            await produce(
                kafka_transport,
                memory_registry,
                audit_setup.topic,
                [audit_event(i) for i in range(300, 600)],
            )
            retries_at_cut = sink.stats.database_retries

            async def backing_off() -> bool:
                return sink.stats.database_retries >= retries_at_cut + 2

            await eventually(backing_off, timeout_s=30, what="the sink to back off")
            loop = asyncio.get_running_loop()
            resume_at = loop.time() + OUTAGE_S

            async def outage_over() -> bool:
                assert not task.done()
                return loop.time() >= resume_at

            await eventually(outage_over, timeout_s=OUTAGE_S + 5, what="the outage window")
            assert await count_rows(database, schema) == 300  # nothing written while down
            await proxy.start()  # same port: PostgreSQL is back
            back_at = loop.time()

            async def everything() -> bool:
                assert not task.done()
                return await count_rows(database, schema) >= 600

            await eventually(everything, timeout_s=60, what="all 600 rows after the outage")
            recovery_s = loop.time() - back_at
        finally:
            sink.stop()
            await task
    rows = await count_rows(database, schema)
    record(
        FaultResult(
            fault=f"PostgreSQL outage {OUTAGE_S:g}s under the audit sink",
            acknowledged=600,
            delivered=rows - sink.stats.duplicates,
            lost=600 - rows,
            duplicated=sink.stats.duplicates,
            offsets_moved_back=None,  # the sink's offsets live in PostgreSQL with its rows
            recovery_s=recovery_s,
            promise="exactly-once",
        )
    )
    assert rows == 600
    assert sink.stats.duplicates == 0
    report = await run_verify(transport=kafka_transport, database=database, settings=settings)
    assert report.ok, report.to_dict()
    assert report.rows == 600
