"""Per-test snapshots topic and small helpers over the shared real-broker fixtures."""

from __future__ import annotations

from collections.abc import Sequence

import pytest_asyncio

from streaming.replay import SNAPSHOTS_TOPIC, SnapshotStore
from streaming.replay.reading import iter_range
from streaming.replay.snapshots import SNAPSHOTS_TOPIC_CONFIG
from streaming.testing import eventually
from streaming.testing.plugin import TopicFactory
from streaming.transport.base import (
    ConsumerTransport,
    OutgoingRecord,
    Record,
    TopicPartition,
    TransportFactory,
)


@pytest_asyncio.fixture(loop_scope="session")
async def store(kafka_transport: TransportFactory, topic_factory: TopicFactory) -> SnapshotStore:
    """A fresh compacted stand-in for ``_streaming.offset-snapshots``, dropped after the test."""
    topic = await topic_factory(1, prefix=SNAPSHOTS_TOPIC, config=dict(SNAPSHOTS_TOPIC_CONFIG))
    return SnapshotStore(kafka_transport, topic=topic)


async def produce(transport: TransportFactory, records: Sequence[OutgoingRecord]) -> None:
    producer = transport.producer(linger_ms=20)
    await producer.start()
    try:
        for start in range(0, len(records), 1000):
            await producer.send_many(records[start : start + 1000])
    finally:
        await producer.stop()


async def read_all(
    transport: TransportFactory, topic: str, *, read_committed: bool = True
) -> list[Record]:
    """Every record of ``topic`` up to its current end, partition by partition."""
    consumer = transport.consumer(
        group_id=None,
        isolation_level="read_committed" if read_committed else "read_uncommitted",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(await consumer.partitions_for(topic))]
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        out: dict[TopicPartition, list[Record]] = {tp: [] for tp in tps}
        async for batch in iter_range(consumer, {tp: (begin[tp], end[tp]) for tp in tps}):
            for tp, records in batch.items():
                out[tp] += records
        return [r for tp in tps for r in out[tp]]
    finally:
        await consumer.stop()


async def wait_assigned(consumer: ConsumerTransport, timeout_s: float = 30.0) -> None:
    """Poll until the group gave this member partitions."""

    async def assigned() -> bool:
        if not consumer.assignment():
            await consumer.poll(timeout_ms=100, max_records=1)
        return bool(consumer.assignment())

    await eventually(assigned, timeout_s=timeout_s, what="a partition assignment")
