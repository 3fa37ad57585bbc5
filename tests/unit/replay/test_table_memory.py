"""CompactedTable and StateStore against the in-memory transport."""

from __future__ import annotations

from pathlib import Path

from streaming.replay import CompactedTable, StateStore
from streaming.transport.base import OutgoingRecord
from tests.unit.replay.conftest import Cluster

COMPACT = {"cleanup.policy": "compact"}


async def test_table_holds_the_latest_value_per_key_and_drops_tombstones(
    cluster: Cluster,
) -> None:
    topic = await cluster.topic("accounts", 2, COMPACT)
    await cluster.produce(
        [
            OutgoingRecord(topic, b"1", key=b"a"),
            OutgoingRecord(topic, b"1", key=b"b"),
            OutgoingRecord(topic, b"2", key=b"a"),
            OutgoingRecord(topic, None, key=b"b"),
        ]
    )
    expected = {b"a": b"2"}
    async with CompactedTable(cluster.transport, topic) as table:
        assert table.snapshot() == expected
        assert table.records_applied == 4
    cluster.transport.compact(topic)
    async with CompactedTable(cluster.transport, topic) as table:
        assert table.snapshot() == expected


async def test_table_follows_updates_after_the_build(cluster: Cluster) -> None:
    topic = await cluster.topic("accounts", 1, COMPACT)
    await cluster.produce([OutgoingRecord(topic, b"1", key=b"a")])
    updates: list[tuple[bytes, bytes | None]] = []

    async def on_update(key: bytes, value: bytes | None) -> None:
        updates.append((key, value))

    table = CompactedTable(cluster.transport, topic, on_update=on_update)
    await table.start(follow=True)
    try:
        await cluster.produce(
            [OutgoingRecord(topic, b"9", key=b"c"), OutgoingRecord(topic, None, key=b"a")]
        )
        await table.catch_up(timeout_s=5)
        assert table.snapshot() == {b"c": b"9"}
        assert updates == [(b"a", b"1"), (b"c", b"9"), (b"a", None)]
    finally:
        await table.stop()


async def test_state_store_is_restored_from_its_changelog(cluster: Cluster) -> None:
    async with StateStore(cluster.transport, "positions") as store:
        await store.put(b"AAPL", b"10")
        await store.put(b"MSFT", b"5")
        await store.put(b"AAPL", b"12")
        await store.delete(b"MSFT")
        before = store.snapshot()
    topic_config = await cluster.admin.describe_topic_config("positions.changelog")
    assert topic_config["cleanup.policy"] == "compact"
    async with StateStore(cluster.transport, "positions") as restored:
        assert restored.snapshot() == before == {b"AAPL": b"12"}


async def test_disk_cache_restores_only_the_changelog_tail(
    cluster: Cluster, tmp_path: Path
) -> None:
    async with StateStore(cluster.transport, "s", cache_dir=tmp_path) as store:
        for i in range(20):
            await store.put(f"k{i}".encode(), b"v")
    await cluster.produce([OutgoingRecord("s.changelog", b"w", key=b"k1")])  # after the flush
    async with StateStore(cluster.transport, "s", cache_dir=tmp_path) as again:
        assert again.restored_records == 1
        assert len(again) == 20
        assert again.get(b"k1") == b"w"
    async with StateStore(cluster.transport, "s") as cold:
        assert cold.restored_records == 21
        assert cold.snapshot() == again.snapshot()
