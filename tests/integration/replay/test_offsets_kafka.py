"""Offsets snapshots and resets on a real broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from streaming.replay import GroupActiveError, OffsetManager, ResetStrategy, SnapshotStore
from streaming.testing import eventually
from streaming.testing.plugin import TopicFactory
from streaming.transport.base import AdminTransport, OutgoingRecord, TopicPartition
from streaming.transport.kafka import KafkaTransport
from tests.integration.replay.conftest import produce, wait_assigned


async def consume_exactly(
    transport: KafkaTransport, group: str, topic: str, count: int
) -> tuple[list[str], dict[TopicPartition, int]]:
    """Consume ``count`` records as ``group``, committing each batch; ids and positions."""
    consumer = transport.consumer(group_id=group, session_timeout_ms=6000)
    await consumer.start()
    consumer.subscribe([topic])
    ids: list[str] = []
    positions: dict[TopicPartition, int] = {}

    async def consumed() -> int:
        batch = await consumer.poll(timeout_ms=200, max_records=count - len(ids))
        offsets = {}
        for tp, records in batch.items():
            records = records[: count - len(ids)]
            ids.extend((r.value or b"").decode() for r in records)
            if records:
                offsets[tp] = records[-1].offset + 1
        await consumer.commit(offsets)
        positions.update(offsets)
        return len(ids)

    try:
        await eventually(
            consumed, until=lambda n: n >= count, timeout_s=60, what=f"{count} records"
        )
    finally:
        await consumer.stop()
    return ids, positions


async def consume_until(
    transport: KafkaTransport, group: str, topic: str, targets: dict[TopicPartition, int]
) -> list[str]:
    """Consume as ``group`` until each partition's position reaches its target offset."""
    consumer = transport.consumer(group_id=group, session_timeout_ms=6000)
    await consumer.start()
    consumer.subscribe([topic])
    ids: list[str] = []
    done: set[TopicPartition] = set()

    async def reached() -> set[TopicPartition]:
        batch = await consumer.poll(timeout_ms=200)
        offsets = {}
        for tp, records in batch.items():
            kept = [r for r in records if r.offset < targets[tp]]
            ids.extend((r.value or b"").decode() for r in kept)
            if kept:
                offsets[tp] = kept[-1].offset + 1
        await consumer.commit(offsets)
        for tp in consumer.assignment():
            if await consumer.position(tp) >= targets[tp]:
                done.add(tp)
        return done

    try:
        await eventually(
            reached, until=lambda d: d == set(targets), timeout_s=60, what="the target offsets"
        )
    finally:
        await consumer.stop()
    return ids


async def test_restore_rereads_exactly_the_records_consumed_after_the_snapshot(
    kafka_transport: KafkaTransport,
    kafka_admin: AdminTransport,
    topic_factory: TopicFactory,
    store: SnapshotStore,
) -> None:
    topic = await topic_factory(3, prefix="replay-snap")
    group = f"g-{uuid.uuid4().hex[:8]}"
    await produce(
        kafka_transport,
        [OutgoingRecord(topic, f"id-{i}".encode(), key=str(i).encode()) for i in range(3000)],
    )
    manager = OffsetManager(kafka_transport, store=store)
    await consume_exactly(kafka_transport, group, topic, 500)
    snap = await manager.snapshot(group, "before-deploy")
    assert sum(p.committed for p in snap.partitions) == 500
    assert all(p.timestamp_ms is not None for p in snap.partitions)
    consumed_after, _ = await consume_exactly(kafka_transport, group, topic, 1000)
    committed = await kafka_admin.group_offsets(group)
    # A partition the group never committed on starts at 0 (auto.offset.reset=earliest).
    before_restore = {
        TopicPartition(topic, p): committed.get(TopicPartition(topic, p), 0) for p in range(3)
    }

    plan = await manager.restore_snapshot(group, "before-deploy")
    assert plan.total_re_read == 1000
    assert await kafka_admin.group_offsets(group) == snap.offsets

    reread = await consume_until(kafka_transport, group, topic, before_restore)
    assert len(reread) == len(set(reread)) == 1000  # no more, no less
    assert set(reread) == set(consumed_after)


async def test_reset_to_datetime_dry_run_and_active_group(
    kafka_transport: KafkaTransport,
    kafka_admin: AdminTransport,
    topic_factory: TopicFactory,
    store: SnapshotStore,
) -> None:
    topic = await topic_factory(3, prefix="replay-time")
    group = f"g-{uuid.uuid4().hex[:8]}"
    base = 1_700_000_000_000
    stamps = {
        (p, i): base + 1000 * i + 300 * p + (7 if i % 4 == 0 else 0)
        for p in range(3)
        for i in range(30)
    }
    await produce(
        kafka_transport,
        [
            OutgoingRecord(topic, f"{p}-{i}".encode(), partition=p, timestamp_ms=ts)
            for (p, i), ts in stamps.items()
        ],
    )
    await consume_exactly(kafka_transport, group, topic, 90)
    committed = await kafka_admin.group_offsets(group)
    when_ms = base + 10_300
    expected = {
        TopicPartition(topic, p): min(i for i in range(30) if stamps[(p, i)] >= when_ms)
        for p in range(3)
    }
    manager = OffsetManager(kafka_transport, store=store)
    strategy = ResetStrategy.to_datetime(datetime.fromtimestamp(when_ms / 1000, UTC))
    plan = await manager.plan(group, strategy, topics={topic: None})
    assert plan.offsets == expected
    assert {p.tp: p.re_read for p in plan.partitions} == {
        tp: 30 - off for tp, off in expected.items()
    }
    assert await kafka_admin.group_offsets(group) == committed  # the dry run changed nothing

    member = kafka_transport.consumer(group_id=group, session_timeout_ms=6000)
    await member.start()
    try:
        member.subscribe([topic])
        await wait_assigned(member)
        with pytest.raises(GroupActiveError, match="active member"):
            await manager.execute(plan)
    finally:
        await member.stop()
    assert await kafka_admin.group_offsets(group) == committed

    await manager.execute(plan)
    assert await kafka_admin.group_offsets(group) == expected
