"""The sink on a real broker and PostgreSQL: chains per partition, exactly once, verify."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from sqlalchemy import text

from connectors.audit_sink.runtime import run_verify, running_sink
from streaming.db import Database
from streaming.serde.client import SchemaRegistry
from streaming.transport.kafka import KafkaTransport
from tests.integration.audit.conftest import (
    AuditSetup,
    audit_event,
    count_rows,
    produce,
    run_until,
)

pytestmark = pytest.mark.usefixtures("drop_schema")


def _metrics(reader: InMemoryMetricReader) -> dict[str, float]:
    """Counter values and histogram counts by instrument name."""
    found: dict[str, float] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    if value is None:
                        value = point.count  # type: ignore[union-attr]
                    found[metric.name] = found.get(metric.name, 0) + value
    return found


async def test_events_over_three_partitions_sink_into_verified_chains(
    kafka_transport: KafkaTransport,
    database: Database,
    memory_registry: SchemaRegistry,
    audit_setup: AuditSetup,
) -> None:
    settings = audit_setup.settings
    n = 1500
    await produce(
        kafka_transport, memory_registry, audit_setup.topic, [audit_event(i) for i in range(n)]
    )
    async with running_sink(
        transport=kafka_transport, database=database, registry=memory_registry, settings=settings
    ) as sink:

        async def all_rows() -> bool:
            return await count_rows(database, settings.db_schema) >= n

        await run_until(sink, all_rows, timeout_s=60, what=f"{n} audit rows")
    async with database.connect() as conn:
        chains = (
            await conn.execute(
                text(
                    f"SELECT chain_id, count(*), max(seq), count(DISTINCT event_id) "
                    f"FROM {settings.db_schema}.audit_log GROUP BY chain_id ORDER BY chain_id"
                )
            )
        ).all()
    assert len(chains) == 3
    assert sum(c[1] for c in chains) == n
    assert all(c[1] == c[2] == c[3] for c in chains)  # gapless seq, unique events
    assert sink.stats.checkpoints >= 1
    report = await run_verify(transport=kafka_transport, database=database, settings=settings)
    assert report.ok, report.to_dict()
    assert report.rows == n and report.chains == 3
    assert report.latest_checkpoint_id is not None


async def test_redelivered_records_and_duplicate_event_ids_are_skipped(
    kafka_transport: KafkaTransport,
    database: Database,
    memory_registry: SchemaRegistry,
    audit_setup: AuditSetup,
) -> None:
    settings = audit_setup.settings
    events = [audit_event(i) for i in range(40)]
    await produce(kafka_transport, memory_registry, audit_setup.topic, events)
    await produce(kafka_transport, memory_registry, audit_setup.topic, events[:10])  # again
    reader = InMemoryMetricReader()
    async with running_sink(
        transport=kafka_transport,
        database=database,
        registry=memory_registry,
        settings=settings,
        meter=MeterProvider(metric_readers=[reader]).get_meter("test"),
    ) as sink:

        async def consumed() -> bool:
            return sink.stats.rows + sink.stats.duplicates >= 50

        await run_until(sink, consumed, timeout_s=60, what="50 records consumed")
    assert sink.stats.rows == 40 and sink.stats.duplicates == 10
    # The same numbers reach OpenTelemetry, and every batch transaction is timed.
    metrics = _metrics(reader)
    assert (metrics["streaming.audit.rows"], metrics["streaming.audit.duplicates"]) == (40, 10)
    assert metrics["streaming.audit.batch.duration"] == sink.stats.batches > 0
    # A second sink in a new group re-reads everything: PostgreSQL offsets win, nothing doubles.
    fresh = settings.model_copy(update={"group_id": settings.group_id + "-2"})
    async with running_sink(
        transport=kafka_transport, database=database, registry=memory_registry, settings=fresh
    ) as again:
        await produce(kafka_transport, memory_registry, audit_setup.topic, [audit_event(99)])

        async def one_more() -> bool:
            return await count_rows(database, settings.db_schema) >= 41

        await run_until(again, one_more, timeout_s=60, what="the 41st row")
    assert again.stats.duplicates == 0 and again.stats.rows == 1
    assert await count_rows(database, settings.db_schema) == 41
    assert (
        await database.execute_scalar(
            f"SELECT sum(duplicates) FROM {settings.db_schema}.chain_head"
        )
        == 10
    )
    report = await run_verify(transport=kafka_transport, database=database, settings=settings)
    assert report.ok, report.to_dict()
