"""Behaviour of the typed clients, identical on the in-memory transport and real Kafka."""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from streaming.bus import EventBusHealth, TransportEventBus
from streaming.errors import PermissionDenied
from streaming.events import OrderCancelled, OrderPlaced, OrderSide, OrderType
from streaming.fake_events import fake_events
from streaming.producer import CONTENT_TYPE_AVRO
from streaming.retry import FAILURE_HEADERS, RetryPolicy, parse_failure_headers
from streaming.security.rbac import Action
from streaming.serde.wire import frame
from streaming.topics import TopicDefaults
from streaming.transport.base import OutgoingRecord, TopicPartition
from tests.clients_contract.conftest import ClientEnv


def order(order_id: uuid.UUID | None = None) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id or uuid.uuid4(),
        account_id="acct-1",
        symbol="AAPL",
        side=OrderSide.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal("2.5"),
    )


class Flaky(Exception):
    """A transient failure (retryable)."""


async def test_typed_event_round_trips_with_design_headers_and_key(env: ClientEnv) -> None:
    topic = await env.topic(partitions=3)
    sent = [order() for _ in range(5)]
    async with env.producer() as producer:
        metas = [await producer.send(topic, e) for e in sent]
    assert {m.topic for m in metas} == {topic}

    records = await env.read_all(topic)
    assert len(records) == 5
    by_id = {str(e.event_id): e for e in sent}
    for record in records:
        event_id = record.header("event-id").decode()
        event = by_id[event_id]
        assert record.key == str(event.order_id).encode()
        assert record.header("event-type") == b"OrderPlaced"
        assert record.header("content-type") == CONTENT_TYPE_AVRO.encode()
        assert record.header("correlation-id") == event_id.encode()
        assert abs(int(record.header("produced-at")) - time.time() * 1000) < 60_000
        assert record.header("traceparent") is not None
        assert record.value is not None and record.value[0] == 0

    got: list[OrderPlaced] = []
    consumer = env.consumer(topic, env.group())

    @consumer.handler(OrderPlaced)
    async def handle(event: OrderPlaced) -> None:
        got.append(event)

    async with env.running(consumer):
        await env.wait_for(lambda: len(got) >= 5, what="5 events")
    assert sorted(got, key=lambda e: str(e.event_id)) == sorted(sent, key=lambda e: str(e.event_id))


async def test_send_many_keeps_per_key_order_and_consumer_preserves_it(env: ClientEnv) -> None:
    topic = await env.topic(partitions=3)
    events = list(fake_events(OrderPlaced, 300, rng=random.Random(7), keys=5))
    async with env.producer() as producer:
        await producer.send_many(topic, events)
    seen: dict[str, list[str]] = defaultdict(list)
    consumer = env.consumer(topic, env.group())

    @consumer.handler(OrderPlaced)
    async def handle(event: OrderPlaced) -> None:
        seen[str(event.order_id)].append(str(event.event_id))

    async with env.running(consumer):
        await env.wait_for(lambda: sum(map(len, seen.values())) >= 300, what="300 events")
    expected: dict[str, list[str]] = defaultdict(list)
    for e in events:
        expected[str(e.order_id)].append(str(e.event_id))
    assert seen == expected


async def test_transient_failure_is_handled_on_attempt_three_after_the_delays(
    env: ClientEnv,
) -> None:
    topic = await env.topic()
    group = env.group()
    policy = RetryPolicy(attempts=3, delays_s=(0.4, 0.6), jitter=0)
    consumer = env.consumer(topic, group, retry_policy=policy)
    calls: list[float] = []
    handled: list[OrderPlaced] = []

    @consumer.handler(OrderPlaced)
    async def handle(event: OrderPlaced) -> None:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise Flaky(f"attempt {len(calls)} fails")
        handled.append(event)

    event = order()
    async with env.producer() as producer:
        await producer.send(topic, event)
    async with env.running(consumer):
        await env.wait_for(lambda: bool(handled), what="handled on attempt 3")
    assert handled == [event]
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 0.4
    assert calls[2] - calls[1] >= 0.6
    assert consumer.stats.retried == 2 and consumer.stats.dead_lettered == 0
    retry2 = await env.read_all(f"{topic}.{group}.retry.2")
    assert [r.header("x-attempt") for r in retry2] == [b"2"]
    assert await env.read_all(f"{topic}.{group}.dlq") == []


async def test_always_failing_handler_dead_letters_with_every_diagnostic_header(
    env: ClientEnv,
) -> None:
    topic = await env.topic(partitions=2)
    group = env.group()
    consumer = env.consumer(topic, group)

    @consumer.handler(OrderPlaced)
    async def handle(event: OrderPlaced) -> None:
        raise Flaky("never works")

    event = order()
    async with env.producer() as producer:
        meta = await producer.send(topic, event)
    async with env.running(consumer):
        await env.wait_for(lambda: consumer.stats.dead_lettered == 1, what="dead letter")
    (dead,) = await env.read_all(f"{topic}.{group}.dlq")
    names = {k for k, _ in dead.headers}
    assert set(FAILURE_HEADERS) - {"x-not-before"} <= names
    info = parse_failure_headers(dead.headers)
    assert info is not None
    assert (info.original_topic, info.original_partition, info.original_offset) == (
        topic,
        meta.partition,
        meta.offset,
    )
    assert info.attempt == 3
    assert info.consumer_group == group
    assert info.exception_type.endswith("Flaky")
    assert info.exception_message == "never works"
    assert "Traceback" in info.exception_stack
    assert dead.partition == meta.partition
    assert dead.header("event-id") == str(event.event_id).encode()
    assert [k for k, _ in dead.headers].count("traceparent") == 1


async def test_fatal_exception_skips_the_retry_topics(env: ClientEnv) -> None:
    topic = await env.topic()
    group = env.group()
    consumer = env.consumer(topic, group)

    @consumer.handler(OrderPlaced)
    async def handle(event: OrderPlaced) -> None:
        raise TypeError("a bug, not a blip")

    async with env.producer() as producer:
        await producer.send(topic, order())
    async with env.running(consumer):
        await env.wait_for(lambda: consumer.stats.dead_lettered == 1, what="dead letter")
    assert consumer.stats.retried == 0
    (dead,) = await env.read_all(f"{topic}.{group}.dlq")
    assert dead.header("x-attempt") == b"1"
    assert await env.read_all(f"{topic}.{group}.retry.1") == []


async def test_poison_pills_go_to_the_dlq_with_raw_bytes_and_consumption_continues(
    env: ClientEnv,
) -> None:
    topic = await env.topic()
    group = env.group()
    async with env.producer() as producer:
        good = await producer.build(topic, order())
    assert good.value is not None
    pills = {
        "random": bytes(random.Random(1).getrandbits(8) for _ in range(40)) + b"\x01",
        "magic": b"\x07" + good.value[1:],
        "unknown-id": frame(987_654, good.value[5:]),
        "truncated": good.value[: len(good.value) // 2],
    }
    raw = env.transport.producer()
    await raw.start()
    try:
        for name, value in pills.items():
            await raw.send(OutgoingRecord(topic, value, name.encode()))
    finally:
        await raw.stop()
    after = order()
    async with env.producer() as producer:
        await producer.send(topic, after)

    handled: list[OrderPlaced] = []
    consumer = env.consumer(topic, group)

    @consumer.handler(OrderPlaced)
    async def handle(event: OrderPlaced) -> None:
        handled.append(event)

    async with env.running(consumer):
        await env.wait_for(
            lambda: handled == [after] and consumer.stats.dead_lettered == 4, what="pills + good"
        )
    dead = await env.read_all(f"{topic}.{group}.dlq")
    assert {r.key.decode(): r.value for r in dead if r.key} == pills
    types = Counter(
        parse_failure_headers(r.headers).exception_type.rsplit(".", 1)[-1] for r in dead
    )
    assert types["BadMagicByteError"] == 2  # random bytes usually fail the magic byte too
    assert types["UnknownSchemaIdError"] == 1
    assert types["TruncatedRecordError"] == 1


async def test_offsets_are_committed_after_handling(env: ClientEnv) -> None:
    topic = await env.topic(partitions=2)
    group = env.group()
    async with env.producer() as producer:
        metas = await producer.send_many(topic, [order() for _ in range(10)])
    consumer = env.consumer(topic, group)
    done: list[OrderPlaced] = []

    @consumer.handler(OrderPlaced)
    async def handle(event: OrderPlaced) -> None:
        done.append(event)

    async with env.running(consumer):
        await env.wait_for(lambda: len(done) == 10, what="10 events")
    offsets = await env.admin.group_offsets(group)
    for p in {m.partition for m in metas}:
        last = max(m.offset for m in metas if m.partition == p)
        assert offsets[TopicPartition(topic, p)] == last + 1


async def test_committed_offsets_reach_the_end_past_transaction_markers(env: ClientEnv) -> None:
    """After transactional writes the log ends in a commit marker; a caught-up group
    commits past it, so its lag is 0 rather than 1."""
    topic, group = await env.topic(), env.group()
    async with env.producer(transactional_id=f"tx-{group}") as tx, tx.transaction():
        await tx.send_many(topic, [order() for _ in range(4)])
    consumer = env.consumer(topic, group)
    done: list[OrderPlaced] = []

    @consumer.handler(OrderPlaced)
    async def handle(event: OrderPlaced) -> None:
        done.append(event)

    tp = TopicPartition(topic, 0)
    reader = env.transport.consumer()
    await reader.start()
    try:
        end = (await reader.end_offsets([tp]))[tp]
    finally:
        await reader.stop()
    assert end == 5  # 4 records and the commit marker
    async with env.running(consumer):
        await env.wait_for(lambda: len(done) == 4, what="4 events")
    assert (await env.admin.group_offsets(group))[tp] == end


@pytest.mark.parametrize(
    ("isolation", "expected"),
    [(None, ["c1", "c2"]), ("read_uncommitted", ["a1", "c1", "a2", "c2"])],
)
async def test_handlers_never_see_aborted_transactions_unless_asked_to(
    env: ClientEnv, isolation: str | None, expected: list[str]
) -> None:
    topic, group = await env.topic(), env.group()
    events = {name: order() for name in ("a1", "c1", "a2", "c2")}
    async with env.producer(transactional_id=f"tx-{group}") as tx:
        for name, event in events.items():
            with contextlib.suppress(Aborted):
                async with tx.transaction():
                    await tx.send(topic, event)
                    if name.startswith("a"):
                        raise Aborted
    options = {} if isolation is None else {"isolation_level": isolation}
    consumer = env.consumer(topic, group, **options)
    seen: list[uuid.UUID] = []

    @consumer.handler(OrderPlaced)
    async def handle(event: OrderPlaced) -> None:
        seen.append(event.event_id)

    async with env.running(consumer):
        await env.wait_for(lambda: events["c2"].event_id in seen, what="the last event")
    names = {e.event_id: name for name, e in events.items()}
    assert [names[i] for i in seen] == expected


class Aborted(Exception):
    """Raised inside ``transaction()`` to abort it."""


async def test_guard_refusal_fails_before_anything_is_sent(env: ClientEnv) -> None:
    topic = await env.topic()

    class DenyAll:
        async def check(self, topic: str, action: Action) -> None:
            raise PermissionDenied(f"no {action} on {topic}")

    async with env.producer(guard=DenyAll()) as producer:
        with pytest.raises(PermissionDenied):
            await producer.send(topic, order())
    assert await env.read_all(topic) == []


async def test_transactional_consume_transform_produce_commits_offsets_atomically(
    env: ClientEnv,
) -> None:
    source, sink = await env.topic(), await env.topic()
    group = env.group()
    async with env.producer() as producer:
        await producer.send_many(source, [order() for _ in range(3)])
    consumer = env.transport.consumer(group_id=group, isolation_level="read_committed")
    tp = TopicPartition(source, 0)
    await consumer.start()
    consumer.assign([tp])
    got = []
    try:
        await env.wait_for(lambda: _extend(got, consumer), what="3 source records")
        async with env.producer(transactional_id=f"tx-{group}-0") as tx, tx.transaction():
            for _record in got:
                await tx.send(
                    sink,
                    OrderCancelled(
                        order_id=uuid.uuid4(),
                        account_id="a",
                        reason="USER_REQUESTED",
                        remaining_quantity=Decimal(1),
                    ),
                )
            await tx.send_offsets_to_transaction({tp: got[-1].offset + 1}, group)
    finally:
        await consumer.stop()

    async def offsets_committed() -> bool:
        # On a real broker, offsets committed in a transaction become visible to an
        # OffsetFetch a moment after commit_transaction() returns.
        return (await env.admin.group_offsets(group)).get(tp) == got[-1].offset + 1

    await env.wait_for(offsets_committed, what="transactional offsets to be visible")
    assert len([r for r in await env.read_all(sink) if r.value is not None]) == 3


async def _extend(got: list, consumer) -> bool:  # type: ignore[no-untyped-def]
    for records in (await consumer.poll(timeout_ms=200)).values():
        got.extend(records)
    return len(got) >= 3


async def test_event_bus_publishes_and_delivers_to_subscribers(env: ClientEnv) -> None:
    prefix = (await env.topic()).replace("cc-", "cc-")
    bus = TransportEventBus(
        env.transport,
        env.registry,
        group_id=env.group(),
        topic_for=lambda cls: f"{prefix}.{cls.type_name()}",
        topic_defaults=TopicDefaults(partitions=2),
        retry_policy=RetryPolicy(attempts=2, delays_s=(0.2,), jitter=0),
    )
    assert await bus.health_check() is EventBusHealth.UNHEALTHY
    got: list[str] = []

    async def on_order(event: OrderPlaced) -> None:
        got.append(str(event.event_id))

    await bus.start()
    try:
        await bus.subscribe("OrderPlaced", on_order)
        event = order()
        await bus.publish(event)
        await env.wait_for(lambda: got == [str(event.event_id)], what="bus delivery")
        assert await bus.health_check() is EventBusHealth.HEALTHY
        metrics = bus.get_metrics()
        assert metrics.events_published == 1 and metrics.events_processed == 1
    finally:
        await bus.stop()
