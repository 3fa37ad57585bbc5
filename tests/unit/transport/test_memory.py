"""Behaviour of the in-memory broker that the shared contract suite cannot pin."""

from __future__ import annotations

import pytest

from streaming.errors import TopicError, TransportError
from streaming.transport.base import OutgoingRecord, TopicPartition, TopicSpec
from streaming.transport.memory import InMemoryTransport, murmur2, partition_for_key

# Vectors published with Kafka's own Java murmur2 tests.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("data", "expected"), sorted(JAVA_MURMUR2.items()))
def test_murmur2_matches_kafkas_java_hash(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_partition_for_key_is_positive_hash_modulo_partitions() -> None:
    assert partition_for_key(b"21", 6) == (-973932308 & 0x7FFFFFFF) % 6
    assert partition_for_key(b"", 1) == 0


async def _started(transport: InMemoryTransport, *topics: TopicSpec) -> None:
    admin = transport.admin()
    await admin.start()
    await admin.create_topics(list(topics))


async def test_compact_keeps_the_latest_value_per_key_and_drops_tombstones() -> None:
    transport = InMemoryTransport()
    await _started(transport, TopicSpec("accounts", 1, config={"cleanup.policy": "compact"}))
    producer = transport.producer()
    await producer.start()
    for key, value in [(b"a", b"1"), (b"b", b"1"), (b"a", b"2"), (b"b", None), (b"c", b"1")]:
        await producer.send(OutgoingRecord("accounts", value, key=key))

    assert transport.compact("accounts") == 3
    kept = transport.records("accounts")
    assert [(r.key, r.value, r.offset) for r in kept] == [(b"a", b"2", 2), (b"c", b"1", 4)]

    consumer = transport.consumer()
    await consumer.start()
    consumer.assign([TopicPartition("accounts", 0)])
    batch = await consumer.poll(timeout_ms=100)
    assert [r.offset for r in batch[TopicPartition("accounts", 0)]] == [2, 4]
    assert await consumer.end_offsets([TopicPartition("accounts", 0)]) == {
        TopicPartition("accounts", 0): 5
    }


async def test_compacted_topics_refuse_records_without_a_key() -> None:
    transport = InMemoryTransport()
    await _started(transport, TopicSpec("table", 1, config={"cleanup.policy": "compact"}))
    producer = transport.producer()
    await producer.start()
    with pytest.raises(TransportError):
        await producer.send(OutgoingRecord("table", b"v"))


async def test_compaction_leaves_an_open_transaction_alone() -> None:
    transport = InMemoryTransport()
    await _started(transport, TopicSpec("t", 1, config={"cleanup.policy": "compact"}))
    producer = transport.producer(transactional_id="tx")
    await producer.start()
    await producer.begin_transaction()
    await producer.send(OutgoingRecord("t", b"1", key=b"k"))
    await producer.send(OutgoingRecord("t", b"2", key=b"k"))
    assert transport.compact("t") == 0
    await producer.commit_transaction()
    assert transport.compact("t") == 2  # the older value and the commit marker
    assert [r.value for r in transport.records("t")] == [b"2"]


async def test_unknown_topics_are_refused_unless_auto_create_is_on() -> None:
    strict = InMemoryTransport()
    producer = strict.producer()
    await producer.start()
    with pytest.raises(TopicError):
        await producer.send(OutgoingRecord("missing", b"v"))

    lenient = InMemoryTransport(auto_create_topics=True, default_partitions=3)
    producer = lenient.producer()
    await producer.start()
    await producer.send(OutgoingRecord("created", b"v"))
    admin = lenient.admin()
    await admin.start()
    assert await admin.partition_count("created") == 3


async def test_log_append_time_topics_stamp_records_with_the_broker_clock() -> None:
    transport = InMemoryTransport(clock_ms=lambda: 42_000)
    await _started(transport, TopicSpec("t", 1, config={"message.timestamp.type": "LogAppendTime"}))
    producer = transport.producer()
    await producer.start()
    meta = await producer.send(OutgoingRecord("t", b"v", timestamp_ms=1))
    assert meta.timestamp_ms == 42_000
    assert transport.records("t")[0].timestamp_ms == 42_000


async def test_records_without_a_timestamp_get_the_clock_time() -> None:
    transport = InMemoryTransport(clock_ms=lambda: 7)
    await _started(transport, TopicSpec("t", 1))
    producer = transport.producer()
    await producer.start()
    assert (await producer.send(OutgoingRecord("t", b"v"))).timestamp_ms == 7


async def test_keyless_records_spread_round_robin() -> None:
    transport = InMemoryTransport()
    await _started(transport, TopicSpec("t", 3))
    producer = transport.producer()
    await producer.start()
    metas = await producer.send_many([OutgoingRecord("t", b"v")] * 6)
    assert sorted(m.partition for m in metas) == [0, 0, 1, 1, 2, 2]


async def test_clients_must_be_started_first() -> None:
    transport = InMemoryTransport()
    with pytest.raises(TransportError, match=r"start\(\)"):
        await transport.producer().send(OutgoingRecord("t", b"v"))
    with pytest.raises(TransportError, match=r"start\(\)"):
        await transport.consumer().poll(timeout_ms=0)
    with pytest.raises(TransportError, match=r"start\(\)"):
        await transport.admin().list_topics()


async def test_unknown_topic_configs_are_rejected_like_kafka_does() -> None:
    transport = InMemoryTransport()
    with pytest.raises(TopicError, match="unknown topic config"):
        await _started(transport, TopicSpec("t", 1, config={"retention.mss": "1"}))


async def test_a_member_that_never_polls_is_evicted_after_its_session_timeout() -> None:
    transport = InMemoryTransport()
    await _started(transport, TopicSpec("t", 2))
    stuck = transport.consumer(group_id="g", session_timeout_ms=50)
    stuck.subscribe(["t"])
    await stuck.start()
    await stuck.poll(timeout_ms=0)
    assert len(stuck.assignment()) == 2

    lively = transport.consumer(group_id="g", session_timeout_ms=50)
    lively.subscribe(["t"])
    await lively.start()
    await lively.poll(timeout_ms=300)  # waits for the straggler, evicts it, takes all
    assert lively.assignment() == {TopicPartition("t", 0), TopicPartition("t", 1)}
    with pytest.raises(TransportError, match="no longer a member"):
        await stuck.commit({TopicPartition("t", 0): 0})


async def test_a_failing_rebalance_callback_is_logged_not_raised() -> None:
    transport = InMemoryTransport()
    await _started(transport, TopicSpec("t", 1))

    async def broken(_: object) -> None:
        raise RuntimeError("boom")

    consumer = transport.consumer(group_id="g")
    consumer.subscribe(["t"], on_assigned=broken)
    await consumer.start()
    await consumer.poll(timeout_ms=0)
    assert consumer.assignment() == {TopicPartition("t", 0)}


async def test_a_subscription_picks_up_a_topic_created_later() -> None:
    transport = InMemoryTransport()
    consumer = transport.consumer(group_id="g")
    consumer.subscribe(["later"])
    await consumer.start()
    assert await consumer.poll(timeout_ms=0) == {}
    await _started(transport, TopicSpec("later", 2))
    producer = transport.producer()
    await producer.start()
    await producer.send(OutgoingRecord("later", b"v", partition=1))
    batch = await consumer.poll(timeout_ms=1_000)
    assert [r.value for r in batch[TopicPartition("later", 1)]] == [b"v"]


async def test_a_consumer_without_group_gets_every_partition_and_cannot_commit() -> None:
    transport = InMemoryTransport()
    await _started(transport, TopicSpec("t", 3))
    consumer = transport.consumer()
    consumer.subscribe(["t"])
    await consumer.start()
    await consumer.poll(timeout_ms=0)
    assert len(consumer.assignment()) == 3
    with pytest.raises(TransportError, match="group_id"):
        await consumer.commit({TopicPartition("t", 0): 1})


async def test_stopping_a_transactional_producer_aborts_its_open_transaction() -> None:
    transport = InMemoryTransport()
    await _started(transport, TopicSpec("t", 1))
    producer = transport.producer(transactional_id="tx")
    await producer.start()
    await producer.begin_transaction()
    await producer.send(OutgoingRecord("t", b"v"))
    await producer.stop()
    assert transport.records("t", read_committed=True) == []
    reader = transport.consumer(isolation_level="read_committed")
    await reader.start()
    assert await reader.end_offsets([TopicPartition("t", 0)]) == {TopicPartition("t", 0): 2}


async def test_changing_the_subscription_revokes_and_reassigns() -> None:
    transport = InMemoryTransport()
    await _started(transport, TopicSpec("a", 1), TopicSpec("b", 1))
    revoked: list[list[TopicPartition]] = []

    async def on_revoked(parts: list[TopicPartition]) -> None:
        revoked.append(parts)

    consumer = transport.consumer(group_id="g")
    consumer.subscribe(["a"], on_revoked=on_revoked)
    await consumer.start()
    await consumer.poll(timeout_ms=0)
    assert consumer.assignment() == {TopicPartition("a", 0)}
    consumer.subscribe(["b"], on_revoked=on_revoked)
    await consumer.poll(timeout_ms=0)
    assert consumer.assignment() == {TopicPartition("b", 0)}
    assert revoked[-1] == [TopicPartition("a", 0)]
