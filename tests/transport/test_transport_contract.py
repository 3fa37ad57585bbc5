"""The transport contract: the in-memory broker and real Kafka must behave the same.

Each test runs against both (see ``conftest.harness``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import TYPE_CHECKING

import pytest

from streaming.core.clock import now_ms
from streaming.errors import GroupNotEmptyError, TopicError, TransactionError, TransportError
from streaming.testing import eventually
from streaming.transport.base import (
    AdminTransport,
    ConsumerTransport,
    OutgoingRecord,
    ProducerTransport,
    TopicPartition,
    TopicSpec,
)
from streaming.transport.memory import partition_for_key

if TYPE_CHECKING:
    from tests.transport.conftest import Harness


async def test_factory_builds_clients_that_satisfy_the_protocols(harness: Harness) -> None:
    assert isinstance(await harness.producer(), ProducerTransport)
    assert isinstance(await harness.consumer(), ConsumerTransport)
    assert isinstance(harness.admin, AdminTransport)


async def test_produced_record_is_consumed_with_key_value_headers_and_timestamp(
    harness: Harness,
) -> None:
    topic = await harness.new_topic()
    producer = await harness.producer()
    ts = now_ms() - 5_000
    meta = await producer.send(
        OutgoingRecord(topic, b"v1", key=b"k1", headers=(("h", b"x"),), timestamp_ms=ts)
    )
    assert (meta.topic, meta.partition, meta.offset, meta.timestamp_ms) == (topic, 0, 0, ts)

    consumer = await harness.consumer()
    consumer.assign([TopicPartition(topic, 0)])
    [record] = await harness.drain(consumer, 1)

    assert (record.topic, record.partition, record.offset) == (topic, 0, 0)
    assert (record.key, record.value, record.timestamp_ms) == (b"k1", b"v1", ts)
    assert record.headers == (("h", b"x"),)


async def test_send_many_keeps_each_records_timestamp(harness: Harness) -> None:
    topic = await harness.new_topic()
    producer = await harness.producer()
    stamps = [now_ms() - 60_000 + i * 1_000 for i in range(3)]
    metas = await producer.send_many(
        [OutgoingRecord(topic, b"v%d" % i, timestamp_ms=ts) for i, ts in enumerate(stamps)]
    )
    assert [m.timestamp_ms for m in metas] == stamps
    consumer = await harness.consumer()
    consumer.assign([TopicPartition(topic, 0)])
    got = await harness.drain(consumer, 3)
    assert [r.timestamp_ms for r in got] == stamps


async def test_tombstone_and_keyless_records_round_trip(harness: Harness) -> None:
    topic = await harness.new_topic()
    producer = await harness.producer()
    await producer.send_many(
        [OutgoingRecord(topic, None, key=b"gone"), OutgoingRecord(topic, b"x")]
    )
    consumer = await harness.consumer()
    consumer.assign([TopicPartition(topic, 0)])
    first, second = await harness.drain(consumer, 2)
    assert (first.key, first.value) == (b"gone", None)
    assert (second.key, second.value) == (None, b"x")


async def test_keyed_records_land_on_the_murmur2_partition(harness: Harness) -> None:
    topic = await harness.new_topic(partitions=6)
    producer = await harness.producer()
    keys = [f"order-{i}".encode() for i in range(60)]
    metas = await producer.send_many([OutgoingRecord(topic, b"v", key=k) for k in keys])
    assert [m.partition for m in metas] == [partition_for_key(k, 6) for k in keys]
    assert len({m.partition for m in metas}) > 1


async def test_per_key_order_holds_across_partitions(harness: Harness) -> None:
    topic = await harness.new_topic(partitions=3)
    producer = await harness.producer()
    sent = [
        OutgoingRecord(topic, str(seq).encode(), key=f"account-{seq % 7}".encode())
        for seq in range(210)
    ]
    metas = await producer.send_many(sent)
    for p in range(3):  # offsets per partition are dense and ascending in send order
        offsets = [m.offset for m in metas if m.partition == p]
        assert offsets == list(range(len(offsets)))

    consumer = await harness.consumer()
    consumer.assign(harness.tps(topic, 3))
    got = await harness.drain(consumer, 210)
    per_key: dict[bytes | None, list[int]] = defaultdict(list)
    for record in got:
        assert record.value is not None
        per_key[record.key].append(int(record.value))
    assert len(per_key) == 7
    for seqs in per_key.values():
        assert seqs == sorted(seqs)


async def test_headers_keep_order_repeats_and_empty_values(harness: Harness) -> None:
    topic = await harness.new_topic()
    producer = await harness.producer()
    headers = (("traceparent", b"a"), ("x-attempt", b"2"), ("traceparent", b"b"), ("empty", b""))
    await producer.send(OutgoingRecord(topic, b"v", headers=headers))
    consumer = await harness.consumer()
    consumer.assign([TopicPartition(topic, 0)])
    [record] = await harness.drain(consumer, 1)
    assert record.headers == headers
    assert record.header("traceparent") == b"b"


async def test_poll_wakes_up_when_data_arrives(harness: Harness) -> None:
    topic = await harness.new_topic()
    producer = await harness.producer()
    consumer = await harness.consumer()
    consumer.assign([TopicPartition(topic, 0)])
    await eventually(lambda: _positioned(consumer, TopicPartition(topic, 0)), what="a position")

    loop = asyncio.get_running_loop()
    started = loop.time()
    polling = asyncio.ensure_future(consumer.poll(timeout_ms=15_000))
    await producer.send(OutgoingRecord(topic, b"late"))
    batch = await polling
    assert [r.value for r in batch[TopicPartition(topic, 0)]] == [b"late"]
    assert loop.time() - started < 10


async def _positioned(consumer: ConsumerTransport, tp: TopicPartition) -> bool:
    return await consumer.position(tp) == 0


async def test_poll_returns_nothing_after_timeout_on_an_empty_topic(harness: Harness) -> None:
    topic = await harness.new_topic()
    consumer = await harness.consumer()
    consumer.assign([TopicPartition(topic, 0)])
    assert await consumer.poll(timeout_ms=200) == {}


async def test_max_records_bounds_one_poll(harness: Harness) -> None:
    topic = await harness.new_topic()
    producer = await harness.producer()
    await producer.send_many([OutgoingRecord(topic, b"%d" % i) for i in range(20)])
    consumer = await harness.consumer()
    consumer.assign([TopicPartition(topic, 0)])
    got: list[int] = []

    async def polled_some() -> bool:
        batch = await consumer.poll(timeout_ms=500, max_records=5)
        got.extend(len(records) for records in batch.values())
        return bool(got)

    await eventually(polled_some, what="a first batch")
    assert 1 <= sum(got) <= 5


async def test_commit_is_read_back_and_a_new_member_resumes_there(harness: Harness) -> None:
    topic = await harness.new_topic()
    group = f"g-{topic}"
    tp = TopicPartition(topic, 0)
    producer = await harness.producer()
    await producer.send_many([OutgoingRecord(topic, b"%d" % i) for i in range(10)])

    first = await harness.consumer(group_id=group)
    first.assign([tp])
    assert await first.committed(tp) is None
    got = await harness.drain(first, 10)
    await first.commit({tp: got[3].offset + 1})
    assert await first.committed(tp) == 4
    await first.stop()

    second = await harness.consumer(group_id=group)
    second.assign([tp])
    assert await second.position(tp) == 4
    rest = await harness.drain(second, 6)
    assert [r.offset for r in rest] == list(range(4, 10))


async def test_auto_offset_reset_latest_skips_existing_records(harness: Harness) -> None:
    topic = await harness.new_topic()
    tp = TopicPartition(topic, 0)
    producer = await harness.producer()
    await producer.send_many([OutgoingRecord(topic, b"old")] * 3)
    consumer = await harness.consumer(auto_offset_reset="latest")
    consumer.assign([tp])
    assert await consumer.position(tp) == 3
    await producer.send(OutgoingRecord(topic, b"new"))
    [record] = await harness.drain(consumer, 1)
    assert (record.offset, record.value) == (3, b"new")


async def test_seek_rereads_from_the_given_offset(harness: Harness) -> None:
    topic = await harness.new_topic()
    tp = TopicPartition(topic, 0)
    producer = await harness.producer()
    await producer.send_many([OutgoingRecord(topic, b"%d" % i) for i in range(5)])
    consumer = await harness.consumer()
    consumer.assign([tp])
    await harness.drain(consumer, 5)

    consumer.seek(tp, 2)
    assert await consumer.position(tp) == 2
    again = await harness.drain(consumer, 3)
    assert [r.offset for r in again] == [2, 3, 4]

    await consumer.seek_to_beginning(tp)
    assert [r.offset for r in await harness.drain(consumer, 5)] == [0, 1, 2, 3, 4]
    await consumer.seek_to_end(tp)
    assert await consumer.position(tp) == 5


async def test_seek_on_an_unassigned_partition_is_a_transport_error(harness: Harness) -> None:
    topic = await harness.new_topic()
    consumer = await harness.consumer()
    consumer.assign([TopicPartition(topic, 0)])
    with pytest.raises(TransportError):
        consumer.seek(TopicPartition(topic, 1), 0)


async def test_pause_holds_back_one_partition_only_until_resumed(harness: Harness) -> None:
    topic = await harness.new_topic(partitions=2)
    held, flowing = TopicPartition(topic, 0), TopicPartition(topic, 1)
    producer = await harness.producer()
    await producer.send_many(
        [OutgoingRecord(topic, b"h", partition=0)] * 3 + [OutgoingRecord(topic, b"f", partition=1)]
    )
    consumer = await harness.consumer()
    consumer.assign([held, flowing])
    consumer.pause(held)
    assert consumer.paused() == {held}

    [record] = await harness.drain(consumer, 1)
    assert record.tp == flowing
    assert await consumer.poll(timeout_ms=300) == {}

    consumer.resume(held)
    assert consumer.paused() == set()
    resumed = await harness.drain(consumer, 3)
    assert {r.tp for r in resumed} == {held}


async def test_beginning_and_end_offsets_track_the_log(harness: Harness) -> None:
    topic = await harness.new_topic(partitions=2)
    producer = await harness.producer()
    await producer.send_many(
        [OutgoingRecord(topic, b"x", partition=0)] * 4 + [OutgoingRecord(topic, b"y", partition=1)]
    )
    consumer = await harness.consumer()
    parts = harness.tps(topic, 2)
    assert await consumer.beginning_offsets(parts) == {parts[0]: 0, parts[1]: 0}
    assert await consumer.end_offsets(parts) == {parts[0]: 4, parts[1]: 1}
    assert await consumer.partitions_for(topic) == {0, 1}


async def test_offsets_for_times_finds_the_first_record_at_or_after(harness: Harness) -> None:
    topic = await harness.new_topic()
    tp = TopicPartition(topic, 0)
    base = now_ms() - 60_000
    producer = await harness.producer()
    await producer.send_many(
        [OutgoingRecord(topic, b"x", timestamp_ms=base + i * 1_000) for i in range(3)]
    )
    consumer = await harness.consumer()
    assert await consumer.offsets_for_times({tp: base - 1}) == {tp: 0}
    assert await consumer.offsets_for_times({tp: base + 1_000}) == {tp: 1}
    assert await consumer.offsets_for_times({tp: base + 1_500}) == {tp: 2}
    assert await consumer.offsets_for_times({tp: base + 60_000}) == {tp: None}


async def test_admin_sees_group_offsets_and_may_alter_them_when_empty(harness: Harness) -> None:
    topic = await harness.new_topic(partitions=2)
    group = f"g-{topic}"
    p0, p1 = harness.tps(topic, 2)
    producer = await harness.producer()
    await producer.send_many([OutgoingRecord(topic, b"x", partition=0)] * 3)
    consumer = await harness.consumer(group_id=group)
    consumer.assign([p0, p1])
    await consumer.commit({p0: 3, p1: 0})
    await consumer.stop()

    assert await harness.admin.group_offsets(group) == {p0: 3, p1: 0}
    assert group in await harness.admin.list_groups()
    info = await harness.admin.describe_group(group)
    assert (info.state, info.members, info.member_ids) == ("Empty", 0, ())

    await harness.admin.alter_group_offsets(group, {p0: 1})
    assert await harness.admin.group_offsets(group) == {p0: 1, p1: 0}
    resumed = await harness.consumer(group_id=group)
    resumed.assign([p0])
    assert await resumed.position(p0) == 1


async def test_unknown_group_is_dead_with_no_offsets(harness: Harness) -> None:
    info = await harness.admin.describe_group("no-such-group-ever")
    assert (info.state, info.members) == ("Dead", 0)
    assert await harness.admin.group_offsets("no-such-group-ever") == {}


async def test_altering_offsets_of_an_active_group_is_refused(harness: Harness) -> None:
    topic = await harness.new_topic()
    group = f"g-{topic}"
    tp = TopicPartition(topic, 0)
    consumer = await harness.consumer(group_id=group)
    consumer.subscribe([topic])
    await eventually(lambda: _assigned(consumer, {tp}), what="assignment")
    with pytest.raises(GroupNotEmptyError):
        await harness.admin.alter_group_offsets(group, {tp: 0})
    info = await harness.admin.describe_group(group)
    assert (info.state, info.members) == ("Stable", 1)
    (member,) = info.member_ids  # who is in it: a changed set means a rebalance
    assert member


async def _assigned(consumer: ConsumerTransport, wanted: set[TopicPartition]) -> bool:
    await consumer.poll(timeout_ms=200)
    return consumer.assignment() == wanted


async def test_second_member_triggers_revoke_then_round_robin_assign(harness: Harness) -> None:
    topic = await harness.new_topic(partitions=4)
    group = f"g-{topic}"
    every = set(harness.tps(topic, 4))
    events: list[tuple[str, str, list[TopicPartition]]] = []

    def listener(name: str, kind: str):  # type: ignore[no-untyped-def]
        async def record(parts: list[TopicPartition]) -> None:
            events.append((name, kind, list(parts)))

        return record

    a = await harness.consumer(group_id=group, start=False)
    a.subscribe([topic], on_assigned=listener("a", "assigned"), on_revoked=listener("a", "revoked"))
    await a.start()
    await eventually(lambda: _assigned(a, every), what="a owns every partition")
    assert ("a", "assigned", sorted(every)) in events

    b = await harness.consumer(group_id=group, start=False)
    b.subscribe([topic], on_assigned=listener("b", "assigned"), on_revoked=listener("b", "revoked"))
    await b.start()

    async def split() -> bool:
        await asyncio.gather(a.poll(timeout_ms=200), b.poll(timeout_ms=200))
        return len(a.assignment()) == 2 and len(b.assignment()) == 2

    await eventually(split, what="partitions split between a and b")
    assert a.assignment() | b.assignment() == every
    assert a.assignment() & b.assignment() == set()
    assert ("a", "revoked", sorted(every)) in events
    a_events = [(kind, parts) for name, kind, parts in events if name == "a"]
    assert a_events[-2:] == [("revoked", sorted(every)), ("assigned", sorted(a.assignment()))]


async def test_read_committed_sees_committed_transactions_only(harness: Harness) -> None:
    topic = await harness.new_topic()
    tp = TopicPartition(topic, 0)
    producer = await harness.producer(transactional_id=f"tx-{topic}")

    await producer.begin_transaction()
    await producer.send(OutgoingRecord(topic, b"aborted"))
    await producer.abort_transaction()
    await producer.begin_transaction()
    await producer.send_many([OutgoingRecord(topic, b"c1"), OutgoingRecord(topic, b"c2")])
    await producer.commit_transaction()
    await producer.begin_transaction()
    await producer.send(OutgoingRecord(topic, b"open"))

    committed_reader = await harness.consumer(isolation_level="read_committed")
    committed_reader.assign([tp])
    got = await harness.drain(committed_reader, 2)
    assert [r.value for r in got] == [b"c1", b"c2"]
    assert await committed_reader.poll(timeout_ms=300) == {}

    dirty_reader = await harness.consumer(isolation_level="read_uncommitted")
    dirty_reader.assign([tp])
    dirty = await harness.drain(dirty_reader, 4)
    assert [r.value for r in dirty] == [b"aborted", b"c1", b"c2", b"open"]

    await producer.commit_transaction()
    [late] = await harness.drain(committed_reader, 1)
    assert late.value == b"open"


async def test_a_consumer_reads_committed_by_default(harness: Harness) -> None:
    topic = await harness.new_topic()
    tp = TopicPartition(topic, 0)
    producer = await harness.producer(transactional_id=f"tx-{topic}")
    for value, commit in ((b"a1", False), (b"c1", True), (b"a2", False), (b"c2", True)):
        await producer.begin_transaction()
        await producer.send(OutgoingRecord(topic, value))
        await (producer.commit_transaction() if commit else producer.abort_transaction())

    default_reader = await harness.consumer()
    default_reader.assign([tp])
    got = await harness.drain(default_reader, 2)
    assert [r.value for r in got] == [b"c1", b"c2"]
    assert await default_reader.poll(timeout_ms=300) == {}


async def test_read_committed_end_offset_stops_at_an_open_transaction(harness: Harness) -> None:
    topic = await harness.new_topic()
    tp = TopicPartition(topic, 0)
    plain = await harness.producer()
    await plain.send(OutgoingRecord(topic, b"before"))
    producer = await harness.producer(transactional_id=f"tx-{topic}")
    await producer.begin_transaction()
    await producer.send(OutgoingRecord(topic, b"pending"))

    committed_reader = await harness.consumer(isolation_level="read_committed")
    dirty_reader = await harness.consumer(isolation_level="read_uncommitted")
    assert await committed_reader.end_offsets([tp]) == {tp: 1}
    assert await dirty_reader.end_offsets([tp]) == {tp: 2}
    await producer.commit_transaction()

    async def stable_past_marker() -> bool:
        # Kafka writes the commit marker (which occupies an offset) after EndTxn returns.
        return await committed_reader.end_offsets([tp]) == {tp: 3}

    await eventually(stable_past_marker, what="last stable offset past the marker")


async def test_offsets_sent_to_a_transaction_commit_with_it(harness: Harness) -> None:
    source = await harness.new_topic()
    sink = await harness.new_topic()
    group = f"g-{source}"
    stp = TopicPartition(source, 0)
    producer = await harness.producer(transactional_id=f"tx-{source}")

    await producer.begin_transaction()
    await producer.send(OutgoingRecord(sink, b"out-1"))
    await producer.send_offsets_to_transaction({stp: 5}, group)
    await producer.abort_transaction()
    assert await harness.admin.group_offsets(group) == {}

    await producer.begin_transaction()
    await producer.send(OutgoingRecord(sink, b"out-2"))
    await producer.send_offsets_to_transaction({stp: 7}, group)
    await producer.commit_transaction()

    async def offsets_visible() -> bool:  # the broker materialises them after EndTxn
        return await harness.admin.group_offsets(group) == {stp: 7}

    await eventually(offsets_visible, what="transactional offsets")


async def test_transactional_producer_refuses_to_send_outside_a_transaction(
    harness: Harness,
) -> None:
    topic = await harness.new_topic()
    producer = await harness.producer(transactional_id=f"tx-{topic}")
    with pytest.raises(TransactionError):
        await producer.send(OutgoingRecord(topic, b"x"))
    with pytest.raises(TransactionError):
        await producer.send_many([OutgoingRecord(topic, b"x"), OutgoingRecord(topic, b"y")])


async def test_a_send_many_larger_than_one_batch_keeps_order_and_offsets(
    harness: Harness,
) -> None:
    # 6 x 400 KiB to one partition spans several 1 MiB producer batches.
    topic = await harness.new_topic(partitions=2)
    producer = await harness.producer()
    big = [OutgoingRecord(topic, bytes([i]) * 400_000, key=b"same-key") for i in range(6)]
    metas = await producer.send_many(big)
    partition = partition_for_key(b"same-key", 2)
    assert [(m.partition, m.offset) for m in metas] == [(partition, i) for i in range(6)]
    consumer = await harness.consumer()
    consumer.assign([TopicPartition(topic, partition)])
    got = await harness.drain(consumer, 6)
    assert [r.value[:1] if r.value else b"" for r in got] == [bytes([i]) for i in range(6)]


async def test_topic_admin_create_list_describe_alter_delete(harness: Harness) -> None:
    topic = await harness.new_topic(partitions=3, config={"cleanup.policy": "compact"})
    await harness.admin.create_topics([])  # no-op

    await harness.admin.create_topics([TopicSpec(topic, 5)])  # exists: left alone
    assert topic in await harness.admin.list_topics()
    assert await harness.admin.partition_count(topic) == 3

    config = await harness.admin.describe_topic_config(topic)
    assert config["cleanup.policy"] == "compact"
    assert config["retention.ms"] == "604800000"

    await harness.admin.alter_topic_config(topic, {"retention.ms": "3600000"})
    config = await harness.admin.describe_topic_config(topic)
    assert (config["cleanup.policy"], config["retention.ms"]) == ("compact", "3600000")

    await harness.admin.delete_topics([topic])

    async def gone() -> bool:
        return topic not in await harness.admin.list_topics()

    await eventually(gone, what="topic deletion")
    with pytest.raises(TopicError):
        await harness.admin.partition_count(topic)


async def test_creating_a_topic_with_too_many_replicas_is_a_topic_error(harness: Harness) -> None:

    with pytest.raises(TopicError):
        await harness.admin.create_topics([TopicSpec(f"bad-rf-{id(harness)}", 1, 3)])


async def test_describe_cluster_names_at_least_one_broker(harness: Harness) -> None:
    info = await harness.admin.describe_cluster()
    assert info.brokers
    assert info.cluster_id


async def test_seeking_to_a_negative_offset_is_a_transport_error(harness: Harness) -> None:
    topic = await harness.new_topic()
    tp = TopicPartition(topic, 0)
    consumer = await harness.consumer()
    consumer.assign([tp])
    with pytest.raises(TransportError):
        consumer.seek(tp, -1)


async def test_sending_to_a_missing_partition_is_a_topic_error(harness: Harness) -> None:
    topic = await harness.new_topic(partitions=2)
    producer = await harness.producer()
    with pytest.raises(TopicError):
        await producer.send(OutgoingRecord(topic, b"x", partition=2))
    with pytest.raises(TopicError):
        await producer.send_many([OutgoingRecord(topic, b"x", partition=5)])


async def test_a_newer_producer_with_the_same_transactional_id_fences_the_older(
    harness: Harness,
) -> None:
    topic = await harness.new_topic()
    tp = TopicPartition(topic, 0)
    old = await harness.producer(transactional_id=f"tx-{topic}")
    await old.begin_transaction()
    await old.send(OutgoingRecord(topic, b"zombie"))

    new = await harness.producer(transactional_id=f"tx-{topic}")  # aborts old's transaction
    await new.begin_transaction()
    await new.send(OutgoingRecord(topic, b"fresh"))
    await new.commit_transaction()

    with pytest.raises(TransactionError):
        await old.commit_transaction()
    reader = await harness.consumer(isolation_level="read_committed")
    reader.assign([tp])
    [record] = await harness.drain(reader, 1)
    assert record.value == b"fresh"
