"""Range replay against the in-memory transport: fidelity, resume, handlers, schema check."""

from __future__ import annotations

import json

import pytest

from streaming.replay import (
    H_REPLAY_ID,
    Bound,
    IncompatibleRangeError,
    RangeReplayer,
    ReplayError,
)
from streaming.replay.range import REPLAY_HEADERS
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.serde.schema import Schema
from streaming.serde.wire import frame
from streaming.transport.base import OutgoingRecord, Record
from tests.unit.replay.conftest import Cluster


class Interrupted(Exception):
    pass


def strip(record: Record) -> tuple[int, bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]:
    headers = tuple((k, v) for k, v in record.headers if k not in REPLAY_HEADERS)
    return record.partition, record.key, record.value, headers


async def seed(cluster: Cluster, count: int = 100, partitions: int = 3) -> str:
    topic = await cluster.topic("src", partitions)
    await cluster.produce(
        [
            OutgoingRecord(
                topic,
                f"v{i}".encode(),
                key=f"k{i % 7}".encode(),
                headers=(("event-id", str(i).encode()), ("dup", b"a"), ("dup", b"b")),
            )
            for i in range(count)
        ]
    )
    return topic


async def test_replay_preserves_keys_headers_partitions_and_order(cluster: Cluster) -> None:
    source = await seed(cluster)
    target = await cluster.topic("dst", 3)
    result = await RangeReplayer(cluster.transport, batch_size=16).replay(
        source, target=target, replay_id="r1"
    )
    assert result.written == 100
    copied = cluster.transport.records(target, read_committed=True)
    assert [strip(r) for r in copied] == [strip(r) for r in cluster.transport.records(source)]
    assert {r.header(H_REPLAY_ID) for r in copied} == {b"r1"}


async def test_interrupted_replay_resumes_and_writes_each_record_once(cluster: Cluster) -> None:
    source = await seed(cluster, 200)
    target = await cluster.topic("dst", 3)
    replayer = RangeReplayer(cluster.transport, batch_size=10)

    def stop_midway(done: int, total: int) -> None:
        if done >= 60:
            raise Interrupted

    with pytest.raises(Interrupted):
        await replayer.replay(source, target=target, replay_id="r2", on_progress=stop_midway)
    partial = await replayer.progress("r2")
    assert partial is not None
    assert not partial.done
    assert 60 <= partial.written < 200
    # New records after the interruption are outside the range fixed at the first run.
    await cluster.produce([OutgoingRecord(source, b"late", key=b"late")])
    resumed = await replayer.replay(source, target=target, replay_id="r2")
    assert resumed.resumed
    copied = cluster.transport.records(target, read_committed=True)
    origins = [r.header("x-replay-origin") for r in copied]
    assert len(origins) == len(set(origins)) == 200
    again = await replayer.replay(source, target=target, replay_id="r2")
    assert again.already_done
    assert len(cluster.transport.records(target, read_committed=True)) == 200


async def test_replay_by_offsets_and_time_ranges(cluster: Cluster) -> None:
    source = await cluster.topic("ts", 1)
    await cluster.produce(
        [OutgoingRecord(source, str(i).encode(), timestamp_ms=1_000 * (i + 1)) for i in range(10)]
    )
    replayer = RangeReplayer(cluster.transport)
    ranges = await replayer.resolve(source, Bound.at_time(3_000), Bound.at_time(6_500))
    assert ranges == {0: (2, 6)}
    ranges = await replayer.resolve(source, Bound.at_offset(4), Bound.at_offsets({0: 99}))
    assert ranges == {0: (4, 10)}


async def test_replay_through_a_handler_sees_records_in_partition_order(cluster: Cluster) -> None:
    source = await seed(cluster, 30, partitions=2)
    seen: list[Record] = []

    async def handler(record: Record) -> None:
        seen.append(record)

    result = await RangeReplayer(cluster.transport).replay(
        source, handler=handler, start=Bound.at_offset(2)
    )
    assert result.target.startswith("handler:")
    for partition in (0, 1):
        offsets = [r.offset for r in seen if r.partition == partition]
        assert offsets == sorted(offsets)
        assert offsets[0] == 2


async def test_replay_needs_exactly_one_destination(cluster: Cluster) -> None:
    source = await seed(cluster, 1)
    with pytest.raises(ReplayError, match="exactly one"):
        await RangeReplayer(cluster.transport).replay(source)


def _schema(fields: list[dict[str, object]]) -> Schema:
    return Schema(json.dumps({"type": "record", "name": "Order", "fields": fields}))


async def test_schema_check_refuses_and_lists_unreadable_writer_ids(cluster: Cluster) -> None:
    registry = InMemorySchemaRegistryClient(compatibility="NONE")
    v1 = await registry.register_schema("s", _schema([{"name": "id", "type": "string"}]))
    v2 = await registry.register_schema("s", _schema([{"name": "qty", "type": "int"}]))
    source = await cluster.topic("typed", 1)
    target = await cluster.topic("typed-copy", 1)
    await cluster.produce(
        [OutgoingRecord(source, frame(v1, b"\x02a")), OutgoingRecord(source, frame(v2, b"\x02"))]
    )
    replayer = RangeReplayer(cluster.transport, registry=registry)
    reader = _schema([{"name": "id", "type": "string"}])
    with pytest.raises(IncompatibleRangeError) as caught:
        await replayer.replay(source, target=target, reader_schema=reader)
    assert [i for i, _ in caught.value.offending] == [v2]
    assert cluster.transport.records(target) == []
    ok = await replayer.replay(source, target=target, reader_schema=reader, end=Bound.at_offset(1))
    assert ok.written == 1
