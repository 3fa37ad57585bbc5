"""Range replay on a real broker: fidelity, and exactly once across cancel + resume."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from streaming.replay import RangeReplayer, SnapshotStore
from streaming.replay.range import REPLAY_HEADERS
from streaming.testing.plugin import TopicFactory
from streaming.transport.base import OutgoingRecord, Record
from streaming.transport.kafka import KafkaTransport
from tests.integration.replay.conftest import produce, read_all

COUNT = 5000


def fingerprint(r: Record) -> tuple[int, bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]:
    headers = tuple((k, v) for k, v in r.headers if k not in REPLAY_HEADERS)
    return r.partition, r.key, r.value, headers


async def test_interrupted_replay_resumes_and_writes_each_record_exactly_once(
    kafka_transport: KafkaTransport, topic_factory: TopicFactory, store: SnapshotStore
) -> None:
    source = await topic_factory(3, prefix="replay-src")
    target = await topic_factory(3, prefix="replay-dst")
    await produce(
        kafka_transport,
        [
            OutgoingRecord(
                source,
                f"value-{i}".encode(),
                key=f"key-{i % 97}".encode(),
                headers=(("event-id", str(uuid.uuid4()).encode()), ("h", b"1"), ("h", b"2")),
            )
            for i in range(COUNT)
        ],
    )
    replayer = RangeReplayer(kafka_transport, store=store, batch_size=250)
    replay_id = uuid.uuid4().hex
    midway = asyncio.Event()

    def on_progress(done: int, total: int) -> None:
        if done >= COUNT // 3:
            midway.set()

    task = asyncio.create_task(
        replayer.replay(source, target=target, replay_id=replay_id, on_progress=on_progress)
    )
    await asyncio.wait_for(midway.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    partial = await replayer.progress(replay_id)
    assert partial is not None
    assert not partial.done
    assert COUNT // 3 <= partial.written < COUNT

    result = await replayer.replay(source, target=target, replay_id=replay_id)
    assert result.resumed
    assert result.written == COUNT

    original = await read_all(kafka_transport, source)
    copied = await read_all(kafka_transport, target)
    assert len(copied) == COUNT
    origins = {r.header("x-replay-origin") for r in copied}
    assert len(origins) == COUNT  # each record once
    assert [fingerprint(r) for r in copied] == [fingerprint(r) for r in original]
    assert {r.header("x-replay-id") for r in copied} == {replay_id.encode()}
