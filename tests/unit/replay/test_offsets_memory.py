"""Snapshots and resets against the in-memory transport."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streaming.replay import (
    GroupActiveError,
    OffsetManager,
    ReplayError,
    ResetStrategy,
    SnapshotNotFoundError,
    SnapshotStore,
)
from streaming.transport.base import OutgoingRecord, TopicPartition
from tests.unit.replay.conftest import Cluster


async def consume(cluster: Cluster, group: str, topic: str, count: int) -> list[bytes]:
    """Consume exactly ``count`` records as ``group`` and commit them."""
    consumer = cluster.transport.consumer(group_id=group)
    await consumer.start()
    consumer.subscribe([topic])
    seen: list[bytes] = []
    try:
        while len(seen) < count:
            batch = await consumer.poll(timeout_ms=200, max_records=count - len(seen))
            offsets = {}
            for tp, records in batch.items():
                seen += [r.value or b"" for r in records]
                offsets[tp] = records[-1].offset + 1
            await consumer.commit(offsets)
    finally:
        await consumer.stop()
    return seen


async def test_restoring_a_snapshot_rereads_exactly_what_was_consumed_since(
    cluster: Cluster,
) -> None:
    topic = await cluster.topic("orders", 2)
    await cluster.produce(
        [OutgoingRecord(topic, f"id-{i}".encode(), key=str(i).encode()) for i in range(60)]
    )
    manager = OffsetManager(cluster.transport)
    await consume(cluster, "g", topic, 20)
    snap = await manager.snapshot("g", "before")
    assert sum(p.committed for p in snap.partitions) == 20
    assert sum(p.end for p in snap.partitions) == 60
    after = await consume(cluster, "g", topic, 25)
    plan = await manager.restore_snapshot("g", "before")
    assert plan.total_re_read == 25
    again = await consume(cluster, "g", topic, 25)
    assert sorted(again) == sorted(after)


async def test_snapshots_are_listed_per_group_and_deleted_with_a_tombstone(
    cluster: Cluster,
) -> None:
    topic = await cluster.topic("orders")
    await cluster.produce([OutgoingRecord(topic, b"x") for _ in range(3)])
    await consume(cluster, "g", topic, 2)
    await consume(cluster, "h", topic, 1)
    manager = OffsetManager(cluster.transport)
    await manager.snapshot("g", "one")
    await manager.snapshot("g", "two")
    await manager.snapshot("h", "one")
    store = SnapshotStore(cluster.transport)
    assert [s.name for s in await store.list_snapshots("g")] == ["one", "two"]
    snap = await store.get_snapshot("g", "one")
    assert snap.partitions[0].timestamp_ms is not None
    await store.delete_snapshot("g", "one")
    assert [s.name for s in await store.list_snapshots("g")] == ["two"]
    with pytest.raises(SnapshotNotFoundError, match="offsets list --group g"):
        await store.get_snapshot("g", "one")


async def test_snapshot_of_a_group_without_offsets_is_refused(cluster: Cluster) -> None:
    with pytest.raises(ReplayError, match="no committed offsets"):
        await OffsetManager(cluster.transport).snapshot("ghost", "x")


async def test_reset_to_datetime_lands_on_the_first_record_at_or_after(cluster: Cluster) -> None:
    topic = await cluster.topic("prices", 2)
    base = 1_700_000_000_000
    await cluster.produce(
        [
            OutgoingRecord(topic, b"v", partition=p, timestamp_ms=base + 1000 * i + p * 500)
            for i in range(10)
            for p in (0, 1)
        ]
    )
    await consume(cluster, "g", topic, 20)
    manager = OffsetManager(cluster.transport)
    when = datetime.fromtimestamp((base + 4_200) / 1000, UTC)
    plan = await manager.plan("g", ResetStrategy.to_datetime(when), topics={topic: None})
    # p0 has t=base+4000 at offset 4 (too early) and base+5000 at 5; p1 has base+4500 at 4.
    assert plan.offsets == {TopicPartition(topic, 0): 5, TopicPartition(topic, 1): 4}
    assert (await cluster.admin.group_offsets("g"))[TopicPartition(topic, 0)] == 10  # dry run
    await manager.execute(plan)
    assert await cluster.admin.group_offsets("g") == plan.offsets


async def test_reset_of_an_active_group_is_refused(cluster: Cluster) -> None:
    topic = await cluster.topic("orders")
    await cluster.produce([OutgoingRecord(topic, b"x")])
    member = cluster.transport.consumer(group_id="busy")
    await member.start()
    member.subscribe([topic])
    await member.poll(timeout_ms=50)
    manager = OffsetManager(cluster.transport)
    plan = await manager.plan("busy", ResetStrategy.to_earliest(), topics={topic: None})
    with pytest.raises(GroupActiveError, match="1 active member"):
        await manager.execute(plan)
    await member.stop()


async def test_shift_and_file_strategies_go_through_the_same_plan(cluster: Cluster) -> None:
    topic = await cluster.topic("orders")
    await cluster.produce([OutgoingRecord(topic, b"x") for _ in range(10)])
    await consume(cluster, "g", topic, 8)
    manager = OffsetManager(cluster.transport)
    shifted = await manager.plan("g", ResetStrategy.shift_by(-3))
    assert shifted.offsets == {TopicPartition(topic, 0): 5}
    from_file = await manager.plan("g", ResetStrategy.from_csv(f"{topic},0,2\n"))
    assert from_file.to_csv() == f"{topic},0,2\n"
