"""Transactional outbox on real PostgreSQL and Kafka: atomic writes, crash-safe relay."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence

import pytest
from sqlalchemy import text

from connectors.outbox_relay import OutboxRelay, OutboxWriter
from streaming.db import Database, TransactionManager
from streaming.events import OrderPlaced
from streaming.serde.avro import AvroSerializer
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.testing import eventually
from streaming.transport.kafka import KafkaTransport
from tests.integration.outbox.conftest import order, read_topic

TopicFactory = Callable[..., Awaitable[str]]


class RelayCrashed(Exception):
    """Stands in for the process dying between publish and mark."""


async def place(
    tm: TransactionManager, writer: OutboxWriter, orders: str, topic: str, event: OrderPlaced
) -> None:
    async with tm.transaction() as session:
        await session.execute(
            text(f"INSERT INTO {orders} VALUES (:id, :account)"),
            {"id": event.order_id, "account": event.account_id},
        )
        await writer.add(session, topic, event)


async def test_business_row_and_event_commit_or_roll_back_together(
    database: Database, tables: tuple[str, str], topic_factory: TopicFactory
) -> None:
    outbox, orders = tables
    topic = await topic_factory(partitions=1, prefix="outbox")
    tm = TransactionManager(database)
    writer = OutboxWriter(AvroSerializer(InMemorySchemaRegistryClient()), table=outbox)
    await place(tm, writer, orders, topic, order("acc-1"))
    with pytest.raises(RuntimeError):
        async with tm.transaction() as session:
            await session.execute(
                text(f"INSERT INTO {orders} VALUES (:id, 'acc-2')"), {"id": uuid.uuid4()}
            )
            await writer.add(session, topic, order("acc-2"))
            raise RuntimeError("business rule failed")
    assert await database.execute_scalar(f"SELECT count(*) FROM {orders}") == 1
    assert await database.execute_scalar(f"SELECT count(*) FROM {outbox}") == 1


async def test_relay_crash_between_publish_and_mark_loses_nothing(
    database: Database,
    tables: tuple[str, str],
    topic_factory: TopicFactory,
    kafka_transport: KafkaTransport,
) -> None:
    outbox, orders = tables
    topic = await topic_factory(partitions=3, prefix="outbox")
    tm = TransactionManager(database)
    writer = OutboxWriter(AvroSerializer(InMemorySchemaRegistryClient()), table=outbox)
    events = [order(f"acc-{i % 4}") for i in range(40)]
    for event in events:
        await place(tm, writer, orders, topic, event)

    async def crash(ids: Sequence[int]) -> None:
        raise RelayCrashed(f"died after publishing {len(ids)}")

    producer = kafka_transport.producer()
    await producer.start()
    try:
        crashing = OutboxRelay(database, producer, batch_size=15, table=outbox, after_publish=crash)
        with pytest.raises(RelayCrashed):
            await crashing.relay_once()
        assert (
            await database.execute_scalar(f"SELECT count(*) FROM {outbox} WHERE sent_at IS NULL")
            == 40
        )
        relays = [OutboxRelay(database, producer, batch_size=7, table=outbox) for _ in range(2)]
        tasks = [asyncio.create_task(r.run()) for r in relays]
        try:
            await eventually(
                lambda: database.execute_scalar(
                    f"SELECT count(*) FROM {outbox} WHERE sent_at IS NULL"
                ),
                until=lambda unsent: unsent == 0,
                timeout_s=30,
                what="the relays to drain the outbox",
            )
        finally:
            for r in relays:
                r.stop()
            await asyncio.gather(*tasks)
    finally:
        await producer.stop()
    seen = await read_topic(kafka_transport, topic)
    ids = [eid for eid, _key, _off in seen]
    assert set(ids) == {str(e.event_id) for e in events}  # nothing lost
    assert len(ids) == 55  # the 15 re-sent after the crash are duplicates by event id
    by_key: dict[str, list[int]] = {}
    positions = {str(e.event_id): i for i, e in enumerate(events)}
    for eid, key, _off in seen:
        by_key.setdefault(key, []).append(positions[eid])
    for key, order_seen in by_key.items():
        first_seen = list(dict.fromkeys(order_seen))
        assert first_seen == sorted(first_seen), f"key {key} out of order"
