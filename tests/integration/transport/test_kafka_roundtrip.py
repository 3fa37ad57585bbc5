"""A record goes through the real broker and comes back intact."""

from __future__ import annotations

import asyncio
import uuid

from streaming.testing.plugin import TopicFactory
from streaming.transport import OutgoingRecord, TopicPartition
from streaming.transport.base import AdminTransport
from streaming.transport.kafka import KafkaTransport


async def test_produce_and_consume_through_real_broker(
    kafka_transport: KafkaTransport, topic_factory: TopicFactory, kafka_admin: AdminTransport
) -> None:
    topic = await topic_factory(partitions=3)
    producer = kafka_transport.producer()
    await producer.start()
    try:
        sent = await producer.send_many(
            [
                OutgoingRecord(
                    topic,
                    f"v{i}".encode(),
                    key=f"k{i % 4}".encode(),
                    headers=(("event-id", str(i).encode()),),
                )
                for i in range(30)
            ]
        )
    finally:
        await producer.stop()
    assert len({(m.partition, m.offset) for m in sent}) == 30

    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = kafka_transport.consumer(group_id=group)
    await consumer.start()
    received = []
    try:
        consumer.subscribe([topic])
        async with asyncio.timeout(30):
            while len(received) < 30:
                for records in (await consumer.poll(500)).values():
                    received.extend(records)
        last = {}
        for r in received:
            last[r.tp] = max(last.get(r.tp, -1), r.offset + 1)
        await consumer.commit(last)
    finally:
        await consumer.stop()

    assert sorted(r.value for r in received) == sorted(f"v{i}".encode() for i in range(30))
    by_key: dict[bytes, set[int]] = {}
    for r in received:
        assert r.key is not None
        by_key.setdefault(r.key, set()).add(r.partition)
        assert r.header("event-id") == r.value[1:]  # type: ignore[index]
    assert all(len(parts) == 1 for parts in by_key.values()), "a key moved partitions"
    committed = await kafka_admin.group_offsets(group)
    assert sum(committed.values()) == 30
    assert set(committed) <= {TopicPartition(topic, p) for p in range(3)}


async def test_cluster_reports_its_brokers(kafka_admin: AdminTransport) -> None:
    info = await kafka_admin.describe_cluster()
    assert info.brokers
    assert info.cluster_id
