"""``EventProducer.enqueue`` and batch handlers, identical on the in-memory transport and Kafka."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from streaming import BatchFailure
from streaming.clients.middlewares import CallNext, Message
from streaming.clients.retry import parse_failure_headers
from streaming.errors import TopicError, TransactionError
from streaming.events import OrderPlaced
from streaming.events.fake import fake_events
from streaming.telemetry import MessagingInstruments
from streaming.testing import eventually
from streaming.transport.base import TopicPartition
from tests.clients_contract.conftest import ClientEnv
from tests.clients_contract.test_clients_contract import Flaky, order

OFFSET = "messaging.kafka.offset"
BATCH_COUNT = "messaging.batch.message_count"


async def test_enqueue_returns_futures_that_resolve_in_enqueue_order_per_partition(
    env: ClientEnv,
) -> None:
    topic = await env.topic(partitions=3)
    events = list(fake_events(OrderPlaced, 60, rng=random.Random(3), keys=4))
    async with env.producer() as producer:
        deliveries = [await producer.enqueue(topic, e) for e in events]
        metas = await asyncio.gather(*deliveries)
    by_partition: dict[int, list[int]] = defaultdict(list)
    for meta in metas:
        assert meta.topic == topic
        by_partition[meta.partition].append(meta.offset)
    for offsets in by_partition.values():
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    records = await env.read_all(topic)
    assert len(records) == 60
    stored = {(r.partition, r.offset): r.header("event-id") for r in records}
    for event, meta in zip(events, metas, strict=True):
        assert stored[(meta.partition, meta.offset)] == str(event.event_id).encode()
    assert all(r.header("traceparent") is not None for r in records)
    # The send span of an enqueued record ends at its acknowledgement, with its offset.
    spans = [s for s in env.exporter.get_finished_spans() if s.name == f"send {topic}"]
    assert sorted(s.attributes[OFFSET] for s in spans) == sorted(m.offset for m in metas)


async def test_enqueued_records_are_counted_by_the_time_their_futures_resolve(
    env: ClientEnv,
) -> None:
    topic = await env.topic(partitions=3)
    reader = InMemoryMetricReader()
    instruments = MessagingInstruments.create(MeterProvider(metric_readers=[reader]).get_meter("t"))
    events = list(fake_events(OrderPlaced, 500, rng=random.Random(8), keys=40))
    async with env.producer(instruments=instruments) as producer:
        await asyncio.gather(*[await producer.enqueue(topic, e) for e in events])
        data = reader.get_metrics_data()  # before flush: the futures' resolution counted
    assert data is not None
    [point] = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "messaging.client.sent.messages"
        for p in m.data.data_points
    ]
    assert point.value == 500
    assert dict(point.attributes or {})["messaging.destination.name"] == topic


async def test_flush_waits_for_enqueued_records_and_send_keeps_their_order(
    env: ClientEnv,
) -> None:
    topic = await env.topic()
    async with env.producer() as producer:
        deliveries = [await producer.enqueue(topic, order()) for _ in range(20)]
        after = await producer.send(topic, order())
        await producer.flush()
        assert all(d.done() for d in deliveries)
    offsets = [d.result().offset for d in deliveries]
    assert offsets == sorted(offsets)
    assert after.offset > offsets[-1]


async def test_enqueue_refuses_a_missing_partition_and_sends_outside_a_transaction(
    env: ClientEnv,
) -> None:
    topic = await env.topic(partitions=1)
    async with env.producer() as producer:
        with pytest.raises(TopicError):
            await producer.enqueue(topic, order(), partition=5)
    async with env.producer(transactional_id=f"tx-{env.group()}") as producer:
        with pytest.raises(TransactionError):
            await producer.enqueue(topic, order())
        async with producer.transaction():
            delivery = await producer.enqueue(topic, order())
        assert (await delivery).topic == topic
    assert len(await env.read_all(topic)) == 1


async def test_batch_handler_gets_the_partition_batch_in_offset_order(env: ClientEnv) -> None:
    topic = await env.topic()
    events = [order() for _ in range(30)]
    async with env.producer() as producer:
        await producer.send_many(topic, events)
    group = env.group()
    consumer = env.consumer(topic, group)
    batches: list[list[OrderPlaced]] = []

    @consumer.batch_handler(OrderPlaced)
    async def handle(got: list[OrderPlaced]) -> None:
        batches.append(got)

    async with env.running(consumer):
        await eventually(lambda: sum(map(len, batches)) >= 30, what="30 events")
        await eventually(lambda: consumer.stats.commits >= 1, what="a commit")
    assert [e for batch in batches for e in batch] == events
    assert len(batches[0]) > 1
    assert consumer.stats.handled == 30
    assert (await env.admin.group_offsets(group)).get(TopicPartition(topic, 0)) == 30
    spans = [s for s in env.exporter.get_finished_spans() if s.name == f"process {topic}"]
    assert [s.attributes[BATCH_COUNT] for s in spans] == [len(b) for b in batches]
    assert all(len(s.links) == s.attributes[BATCH_COUNT] for s in spans)


async def test_batch_failure_commits_before_the_index_retries_it_and_redelivers_the_rest(
    env: ClientEnv,
) -> None:
    topic = await env.topic()
    group = env.group()
    events = [order() for _ in range(10)]
    async with env.producer() as producer:
        await producer.send_many(topic, events)
    bad = events[3]
    consumer = env.consumer(topic, group)
    calls: list[list[OrderPlaced]] = []

    @consumer.batch_handler(OrderPlaced)
    async def handle(got: list[OrderPlaced]) -> None:
        calls.append(got)
        if len(calls) == 1:
            raise BatchFailure(got.index(bad), Flaky("record 3 is not ready"))

    async with env.running(consumer):
        await eventually(lambda: [bad] in calls, what="record 3 retried alone")
    assert calls[0] == events
    assert calls[1] == events[4:]  # the rest, handed over again
    assert consumer.stats.handled == 10 and consumer.stats.retried == 1
    (retried,) = await env.read_all(f"{topic}.{group}.retry.1")
    assert retried.header("event-id") == str(bad.event_id).encode()
    info = parse_failure_headers(retried.headers)
    assert info is not None and info.exception_type.endswith("Flaky")
    assert info.original_offset == 3


async def test_any_other_batch_exception_sends_every_record_on_its_own_way(
    env: ClientEnv,
) -> None:
    topic = await env.topic()
    group = env.group()
    events = [order() for _ in range(5)]
    async with env.producer() as producer:
        await producer.send_many(topic, events)
    consumer = env.consumer(topic, group)

    @consumer.batch_handler(OrderPlaced)
    async def handle(got: list[OrderPlaced]) -> None:
        raise TypeError("a bug: fatal, straight to the DLQ")

    async with env.running(consumer):
        await eventually(lambda: consumer.stats.dead_lettered == 5, what="5 dead letters")
    dead = await env.read_all(f"{topic}.{group}.dlq")
    assert sorted(parse_failure_headers(r.headers).original_offset for r in dead) == list(range(5))
    assert await env.read_all(f"{topic}.{group}.retry.1") == []
    assert consumer.stats.handled == 0


async def test_user_middlewares_see_each_record_of_a_batch_and_can_fail_one(
    env: ClientEnv,
) -> None:
    topic = await env.topic()
    group = env.group()
    events = [order() for _ in range(6)]
    async with env.producer() as producer:
        await producer.send_many(topic, events)
    consumer = env.consumer(topic, group)
    seen: list[int] = []
    batches: list[list[OrderPlaced]] = []
    bad = events[2]

    @consumer.use
    async def check(message: Message, call_next: CallNext) -> None:
        seen.append(message.record.offset)
        assert isinstance(message.event, OrderPlaced)
        if message.event == bad:
            raise TypeError("refused by a middleware: straight to the DLQ")
        await call_next(message)

    @consumer.batch_handler(OrderPlaced)
    async def handle(got: list[OrderPlaced]) -> None:
        batches.append(got)

    async with env.running(consumer):
        await eventually(lambda: consumer.stats.dead_lettered == 1, what="1 dead letter")
        await eventually(lambda: consumer.stats.handled == 5, what="5 handled")
    assert seen == list(range(6))
    assert [e for batch in batches for e in batch] == [e for e in events if e != bad]
    (dead,) = await env.read_all(f"{topic}.{group}.dlq")
    assert parse_failure_headers(dead.headers).original_offset == 2
