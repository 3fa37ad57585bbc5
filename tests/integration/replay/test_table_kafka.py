"""CompactedTable after the broker really compacted the topic; a state store across restarts."""

from __future__ import annotations

import uuid
from pathlib import Path

from streaming.replay import CompactedTable, StateStore, changelog_topic
from streaming.testing import eventually
from streaming.testing.plugin import TopicFactory
from streaming.transport.base import AdminTransport, OutgoingRecord
from streaming.transport.kafka import KafkaTransport
from tests.integration.replay.conftest import produce, read_all

FAST_COMPACTION = {
    "cleanup.policy": "compact",
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "100",
    "min.compaction.lag.ms": "0",
}
FILLER = b"__filler"


async def test_table_equals_latest_per_key_after_real_compaction(
    kafka_transport: KafkaTransport, topic_factory: TopicFactory
) -> None:
    topic = await topic_factory(2, prefix="table", config=FAST_COMPACTION)
    expected: dict[bytes, bytes] = {}
    writes = []
    for version in range(5):
        for k in range(40):
            key, value = f"acct-{k}".encode(), f"{k}:{version}".encode()
            writes.append(OutgoingRecord(topic, value, key=key))
            expected[key] = value
    for k in range(0, 40, 4):  # tombstones
        writes.append(OutgoingRecord(topic, None, key=f"acct-{k}".encode()))
        expected.pop(f"acct-{k}".encode())
    await produce(kafka_transport, writes)

    # Segments roll only when a record arrives after segment.ms, so keep writing a filler
    # key to every partition until the cleaner has removed the superseded versions (backoff 500 ms).
    filler = 0

    async def ours_left() -> int:
        nonlocal filler
        filler += 1
        fillers = [
            OutgoingRecord(topic, str(filler).encode(), key=FILLER + b"%d" % p, partition=p)
            for p in (0, 1)
        ]
        await produce(kafka_transport, fillers)
        records = await read_all(kafka_transport, topic)
        return sum(1 for r in records if not (r.key or b"").startswith(FILLER))

    await eventually(
        ours_left,
        until=lambda left: left <= len(expected) + 10,  # duplicates gone (tombstones may linger)
        timeout_s=60,
        what=f"{topic} to be compacted",
        interval_s=0.3,
    )
    expected[FILLER + b"0"] = expected[FILLER + b"1"] = str(filler).encode()

    async with CompactedTable(kafka_transport, topic) as table:
        assert table.snapshot() == expected
        assert all(f"acct-{k}".encode() not in table for k in range(0, 40, 4))
        assert table.records_applied < len(writes)  # it read the compacted log


async def test_state_store_restored_after_restart_equals_state_before(
    kafka_transport: KafkaTransport, kafka_admin: AdminTransport, tmp_path: Path
) -> None:
    name = f"positions-{uuid.uuid4().hex[:8]}"
    try:
        async with StateStore(kafka_transport, name, partitions=2) as store:
            for i in range(200):
                await store.put(f"sym-{i % 50}".encode(), str(i).encode())
            for i in range(0, 50, 5):
                await store.delete(f"sym-{i}".encode())
            before = store.snapshot()
        config = await kafka_admin.describe_topic_config(changelog_topic(name))
        assert config["cleanup.policy"] == "compact"
        async with StateStore(kafka_transport, name, partitions=2) as restored:
            assert restored.snapshot() == before
            assert len(before) == 40
        async with StateStore(kafka_transport, name, cache_dir=tmp_path) as cached:
            await cached.put(b"sym-1", b"new")
            before = cached.snapshot()
        async with StateStore(kafka_transport, name, cache_dir=tmp_path) as warm:
            assert warm.restored_records == 0
            assert warm.snapshot() == before
    finally:
        await kafka_admin.delete_topics([changelog_topic(name)])
