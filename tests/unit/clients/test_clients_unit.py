"""Consumer commit policy, middleware, topic planning and the bus, on in-memory parts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from decimal import Decimal

import pytest

from streaming.clients.bus import EventBusHealth, InMemoryEventBus
from streaming.clients.consumer import ConsumerError, EventConsumer, Message
from streaming.clients.producer import (
    EventProducer,
    ProducerNotStartedError,
    event_headers,
    transactional_id_for,
)
from streaming.clients.retry import RetryPolicy
from streaming.clients.topics import INTERNAL_TOPICS, TopicDefaults, plan_topics
from streaming.context import ExecutionContext, execution_context
from streaming.core.topics import COMMAND_TOPICS
from streaming.errors import TransactionError
from streaming.events import OrderCancelled, OrderPlaced, OrderSide, OrderType
from streaming.serde.errors import RegistryUnavailableError
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.testing import eventually
from streaming.transport.base import TopicPartition, TopicSpec
from streaming.transport.memory import InMemoryTransport


def order() -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid.uuid4(),
        account_id="a",
        symbol="AAPL",
        side=OrderSide.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal(1),
    )


async def setup(partitions: int = 1) -> tuple[InMemoryTransport, InMemorySchemaRegistryClient]:
    transport, registry = InMemoryTransport(), InMemorySchemaRegistryClient()
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec("orders", partitions)])
    return transport, registry


def consumer_for(
    transport: InMemoryTransport, registry: object, **options: object
) -> EventConsumer:
    options.setdefault("retry_policy", RetryPolicy(attempts=2, delays_s=(0.05,), jitter=0))
    return EventConsumer(
        transport,
        registry,
        topics=["orders"],
        group_id="g",
        poll_timeout_ms=50,
        **options,  # type: ignore[arg-type]
    )


async def test_failed_dlq_write_leaves_the_offset_uncommitted_until_the_write_succeeds() -> None:
    transport, registry = await setup()
    async with EventProducer(transport, registry) as producer:
        await producer.send("orders", order())
    consumer = consumer_for(transport, registry, backoff_s=(0.05, 0.1))

    @consumer.handler(OrderPlaced)
    async def handle(event: OrderPlaced) -> None:
        raise TypeError("fatal")

    await consumer.start()
    admin = transport.admin()
    await admin.start()
    await admin.delete_topics(["orders.g.dlq"])  # the DLQ write will fail
    task = asyncio.create_task(consumer.run())
    await eventually(lambda: consumer.stats.rewinds >= 2, timeout_s=10, what="two rewinds")
    assert await admin.group_offsets("g") == {}
    await admin.create_topics([TopicSpec("orders.g.dlq", 1)])
    await eventually(
        lambda: consumer.stats.dead_lettered == 1, timeout_s=10, what="one dead letter"
    )
    consumer.request_stop()
    await task
    assert (await admin.group_offsets("g"))[TopicPartition("orders", 0)] == 1
    assert len(transport.records("orders.g.dlq")) == 1


async def test_registry_outage_rewinds_instead_of_dead_lettering() -> None:
    transport, registry = await setup()
    async with EventProducer(transport, registry) as producer:
        await producer.send("orders", order())
    reader_registry = InMemorySchemaRegistryClient()  # knows no ids: make it fail softly

    async def unavailable(schema_id: int) -> object:
        raise RegistryUnavailableError("registry down", status=503)

    reader_registry.get_schema = unavailable  # type: ignore[method-assign,assignment]
    consumer = consumer_for(transport, reader_registry, backoff_s=(0.02, 0.05))
    task = asyncio.create_task(consumer.run())
    await eventually(lambda: consumer.stats.rewinds >= 2, timeout_s=10, what="two rewinds")
    consumer.request_stop()
    await task
    assert consumer.stats.dead_lettered == 0
    assert transport.records("orders.g.dlq") == []


async def test_middlewares_run_in_order_around_the_handler_and_see_the_event() -> None:
    transport, registry = await setup()
    sent = order()
    async with EventProducer(transport, registry) as producer:
        await producer.send("orders", sent)
    consumer = consumer_for(transport, registry)
    trail: list[str] = []

    async def outer(message: Message, call_next: Callable[[Message], object]) -> None:
        trail.append(f"outer:{type(message.event).__name__}")
        await call_next(message)  # type: ignore[misc]
        trail.append("outer:after")

    async def inner(message: Message, call_next: Callable[[Message], object]) -> None:
        trail.append(f"inner:attempt{message.attempt}")
        await call_next(message)  # type: ignore[misc]

    consumer.use(outer)  # type: ignore[arg-type]
    consumer.use(inner)  # type: ignore[arg-type]

    @consumer.handler(OrderPlaced)
    async def handle(event: OrderPlaced) -> None:
        trail.append(f"handler:{event.event_id == sent.event_id}")

    task = asyncio.create_task(consumer.run())
    await eventually(
        lambda: "outer:after" in trail, timeout_s=10, what="the outer middleware to finish"
    )
    consumer.request_stop()
    await task
    assert trail == ["outer:OrderPlaced", "inner:attempt1", "handler:True", "outer:after"]


async def ignore(_event: object) -> None:
    """A handler that accepts the event and does nothing."""


async def test_unhandled_types_are_skipped_or_dead_lettered_as_configured() -> None:
    transport, registry = await setup()
    async with EventProducer(transport, registry) as producer:
        await producer.send("orders", order())
    skipping = consumer_for(transport, registry)
    skipping.add_handler(OrderCancelled, ignore)
    task = asyncio.create_task(skipping.run())
    await eventually(lambda: skipping.stats.skipped == 1, timeout_s=10, what="one skipped event")
    skipping.request_stop()
    await task

    strict = EventConsumer(
        transport, registry, topics=["orders"], group_id="g2", unhandled="dlq", poll_timeout_ms=50
    )
    task = asyncio.create_task(strict.run())
    await eventually(lambda: strict.stats.dead_lettered == 1, timeout_s=10, what="one dead letter")
    strict.request_stop()
    await task
    assert strict.stats.retried == 0


def test_handler_registration_rejects_duplicates() -> None:
    consumer = EventConsumer(
        InMemoryTransport(), InMemorySchemaRegistryClient(), topics=["t"], group_id="g"
    )
    consumer.add_handler(OrderPlaced, ignore)
    with pytest.raises(ConsumerError, match="already registered"):
        consumer.add_handler(OrderPlaced, ignore)


async def test_producer_must_be_started_and_transactions_need_an_id() -> None:
    transport, registry = await setup()
    producer = EventProducer(transport, registry)
    with pytest.raises(ProducerNotStartedError, match="async with"):
        await producer.send("orders", order())
    async with producer:
        with pytest.raises(TransactionError, match="transactional_id"):
            async with producer.transaction():
                pass


def test_headers_take_the_correlation_id_from_the_execution_context() -> None:
    event = order()
    with execution_context(ExecutionContext(operation="x", correlation_id="corr-1")):
        headers = dict(event_headers(event, now_ms=5))
    assert headers["correlation-id"] == b"corr-1"
    assert headers["produced-at"] == b"5"
    assert dict(event_headers(event, now_ms=5))["correlation-id"] == str(event.event_id).encode()
    assert transactional_id_for("app", TopicPartition("orders", 3)) == "app.orders.3"


def test_plan_topics_sizes_failure_topics_like_their_source_and_compacts_internals() -> None:
    defaults = TopicDefaults(partitions=4, replication_factor=3, min_insync_replicas=2)
    specs = {
        s.name: s
        for s in plan_topics(
            ["orders"],
            groups=["billing"],
            policy=RetryPolicy(attempts=3, delays_s=(1,)),
            defaults=defaults,
            partitions={"orders": 12},
            internal=True,
        )
    }
    assert set(specs) == {
        "orders",
        "orders.billing.retry.1",
        "orders.billing.retry.2",
        "orders.billing.dlq",
        *COMMAND_TOPICS,
    }
    assert {specs[n].partitions for n in specs if n.startswith("orders")} == {12}
    assert specs["orders.billing.dlq"].config == {
        "min.insync.replicas": "2",
        "retention.ms": str(30 * 86_400_000),
    }
    for name in INTERNAL_TOPICS:
        assert specs[name].config["cleanup.policy"] == "compact"
        assert specs[name].replication_factor == 3


async def test_in_memory_bus_follows_the_seed_example() -> None:
    bus = InMemoryEventBus()
    await bus.start()
    got: list[OrderPlaced] = []

    async def my_handler(event: OrderPlaced) -> None:
        got.append(event)

    await bus.subscribe("OrderPlaced", my_handler)
    event = order()
    await bus.publish(event, context=ExecutionContext(operation="place", correlation_id="c-9"))
    await eventually(lambda: got == [event], timeout_s=10, what="the event")
    assert await bus.health_check() is EventBusHealth.HEALTHY
    record = bus.transport.records("events.OrderPlaced")[0]  # type: ignore[attr-defined]
    assert record.header("correlation-id") == b"c-9"
    await bus.stop()
    assert bus.get_metrics().events_processed == 1
    assert await bus.health_check() is EventBusHealth.UNHEALTHY
