"""A paused broker stalls only its own partitions of a ``send_many`` (issue 12, defect 8).

Runs on the fault suite's three-broker cluster (``cluster`` in ``conftest.py``). The
topic has one replica per partition, so a SIGSTOPped broker holds exactly its own
partitions. While it is paused, the records a ``send_many`` sends to the other brokers'
partitions must be acknowledged and readable by an independent client, even when the
paused partitions come first in the batch and earlier calls left batches for them in
flight and queued (aiokafka queues one batch per partition behind the one in flight).
"""

from __future__ import annotations

import asyncio
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer
from confluent_kafka import TopicPartition as CTP
from confluent_kafka.admin import AdminClient

from streaming.config import KafkaSettings
from streaming.errors import PartialSendError
from streaming.testing import eventually
from streaming.transport.base import OutgoingRecord, ProducerTransport, RecordMetadata, TopicSpec
from streaming.transport.kafka import KafkaTransport
from tests.faults.cluster import Cluster

PARTITIONS = 6
PER_PARTITION = 50


def _leaders(bootstrap: str, topic: str) -> dict[int, int]:
    """Partition -> leader node id, from an independent client."""
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=30)
    return {p: info.leader for p, info in meta.topics[topic].partitions.items()}


def _records(topic: str, tag: str, order: list[int], count: int) -> list[OutgoingRecord]:
    return [
        OutgoingRecord(topic, f"{tag}-{p}-{i}".encode(), key=None, partition=p)
        for p in order
        for i in range(count)
    ]


async def _settle(
    task: asyncio.Task[list[RecordMetadata]], records: list[OutgoingRecord], healthy: set[int]
) -> None:
    """The call ends; every record of a healthy partition was acknowledged."""
    try:
        metas: list[RecordMetadata | None] = list(await asyncio.wait_for(task, 120))
    except PartialSendError as exc:
        metas = exc.results
    for record, meta in zip(records, metas, strict=True):
        if record.partition in healthy:
            assert meta is not None and meta.partition == record.partition


async def test_records_for_healthy_partitions_complete_while_a_broker_is_paused(
    healthy: Cluster,
) -> None:
    bootstrap = healthy.bootstrap
    transport = KafkaTransport(KafkaSettings(bootstrap_servers=bootstrap))
    topic = f"paused-{uuid.uuid4().hex[:8]}"
    admin = transport.admin()
    await admin.start()
    try:
        await admin.create_topics([TopicSpec(topic, PARTITIONS, 1)])
    finally:
        await admin.stop()
    leaders = await asyncio.to_thread(_leaders, bootstrap, topic)
    paused_node = leaders[0]
    stalled = {p for p, node in leaders.items() if node == paused_node}
    live = set(range(PARTITIONS)) - stalled
    assert live, f"every partition is on node {paused_node}: {leaders}"

    producer: ProducerTransport = transport.producer(linger_ms=0)
    await producer.start()
    reader = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"r-{topic}", "enable.auto.commit": False}
    )
    try:
        await producer.send_many(_records(topic, "warm", list(range(PARTITIONS)), 1))
        healthy.pause(paused_node)
        # Earlier calls leave a batch in flight and one queued for the paused partitions;
        # the last call lists those partitions first and must not hold the live ones.
        order = sorted(stalled) + sorted(live)
        calls = [_records(topic, tag, order, 1) for tag in ("first", "second")]
        calls.append(_records(topic, "third", order, PER_PARTITION))
        tasks = [asyncio.create_task(producer.send_many(records)) for records in calls]

        reader.assign([CTP(topic, p, OFFSET_BEGINNING) for p in sorted(live)])
        wanted = {r.value for r in calls[-1] if r.partition in live}
        seen: set[bytes] = set()

        async def unread() -> int:
            for message in await asyncio.to_thread(reader.consume, 500, 0.2):
                if message.error() is None and message.value() is not None:
                    seen.add(message.value())
            return len(wanted - seen)

        await eventually(
            unread,
            until=lambda left: left == 0,
            timeout_s=15,  # well under the 30 s request timeout
            what=f"the live partitions' records while node {paused_node} is paused",
        )
        assert not any(t.done() for t in tasks), "the paused broker cannot have acknowledged"

        healthy.resume(paused_node)
        for task, records in zip(tasks, calls, strict=True):
            await _settle(task, records, live)
    finally:
        healthy.resume(paused_node)  # the fixture heals the cluster after the test too
        reader.close()
        await producer.stop()
