"""Delivery guarantees of the typed clients on a real broker: volume, order, retry timing."""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid
from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from streaming.clients.consumer import EventConsumer
from streaming.clients.producer import EventProducer
from streaming.clients.retry import RetryPolicy
from streaming.events import OrderPlaced, OrderSide, OrderType
from streaming.events.fake import fake_events
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.testing import eventually
from streaming.testing.plugin import TopicFactory
from streaming.transport.kafka import KafkaTransport


def report(capsys: pytest.CaptureFixture[str], text: str) -> None:
    """Show a measured figure in the test output (the issue asks for the numbers)."""
    with capsys.disabled():
        sys.stderr.write(f"\n[measured] {text}\n")


async def test_ten_thousand_events_over_six_partitions_exactly_once_in_key_order(
    kafka_transport: KafkaTransport,
    topic_factory: TopicFactory,
    cleanup: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = await topic_factory(partitions=6)
    cleanup.append(topic)
    registry = InMemorySchemaRegistryClient()
    events = list(fake_events(OrderPlaced, 10_000, rng=random.Random(42), keys=300))
    started = time.perf_counter()
    async with EventProducer(kafka_transport, registry) as producer:
        for i in range(0, len(events), 1000):
            await producer.send_many(topic, events[i : i + 1000])
    produced_s = time.perf_counter() - started

    group = f"ten-k-{uuid.uuid4().hex[:6]}"
    consumer = EventConsumer(
        kafka_transport, registry, topics=[topic], group_id=group, poll_timeout_ms=200
    )
    seen: list[tuple[str, str, int]] = []

    @consumer.handler(OrderPlaced)
    async def handle(event: OrderPlaced) -> None:
        seen.append((str(event.order_id), str(event.event_id), 0))

    started = time.perf_counter()
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: len(seen) >= 10_000, timeout_s=60, what="10,000 events")
    finally:
        consumer.request_stop()
        await task
    consumed_s = time.perf_counter() - started

    ids = Counter(event_id for _, event_id, _ in seen)
    assert len(ids) == 10_000
    assert set(ids.values()) == {1}, "some event was handled twice"
    assert ids.keys() == {str(e.event_id) for e in events}
    expected: dict[str, list[str]] = defaultdict(list)
    for e in events:
        expected[str(e.order_id)].append(str(e.event_id))
    got: dict[str, list[str]] = defaultdict(list)
    for key, event_id, _ in seen:
        got[key].append(event_id)
    assert got == expected, "per-key order broken"
    report(
        capsys,
        f"10k typed events: produced in {produced_s:.2f}s, consumed exactly once in "
        f"{consumed_s:.2f}s (incl. group join)",
    )
    assert produced_s < 60 and consumed_s < 60


async def test_transient_failure_waits_in_retry_topics_while_other_partitions_flow(
    kafka_transport: KafkaTransport,
    topic_factory: TopicFactory,
    cleanup: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = await topic_factory(partitions=2)
    cleanup.append(topic)
    registry = InMemorySchemaRegistryClient()
    delays = (1.0, 1.5)
    group = f"retry-{uuid.uuid4().hex[:6]}"
    consumer = EventConsumer(
        kafka_transport,
        registry,
        topics=[topic],
        group_id=group,
        retry_policy=RetryPolicy(attempts=3, delays_s=delays, jitter=0.1),
        poll_timeout_ms=100,
    )
    flaky_id = uuid.uuid4()
    attempts: list[float] = []
    latencies: list[tuple[int, float]] = []
    produced_at: dict[str, float] = {}

    @consumer.handler(OrderPlaced)
    async def handle(event: OrderPlaced) -> None:
        now = time.monotonic()
        if event.order_id == flaky_id:
            attempts.append(now)
            if len(attempts) < 3:
                raise ConnectionError(f"downstream blip {len(attempts)}")
            return
        latencies.append((int(event.account_id[-1]), now - produced_at[str(event.event_id)]))

    def make(partition: int, order_id: uuid.UUID | None = None) -> OrderPlaced:
        return OrderPlaced(
            order_id=order_id or uuid.uuid4(),
            account_id=f"acct-{partition}",
            symbol="MSFT",
            side=OrderSide.SELL,
            order_type=OrderType.MARKET,
            quantity=Decimal(1),
        )

    task = asyncio.create_task(consumer.run())
    try:
        async with EventProducer(kafka_transport, registry) as producer:
            # Warm up: the group has joined once a healthy event is handled.
            warm = make(1)
            produced_at[str(warm.event_id)] = time.monotonic()
            await producer.send(topic, warm, partition=1)
            await eventually(lambda: bool(latencies), timeout_s=30, what="group join")
            latencies.clear()
            await producer.send(topic, make(0, flaky_id), partition=0)
            loop = asyncio.get_running_loop()
            end = loop.time() + sum(delays) + 1.0
            while loop.time() < end:  # a steady healthy stream on both partitions
                for partition in (0, 1):
                    event = make(partition)
                    produced_at[str(event.event_id)] = time.monotonic()
                    await producer.send(topic, event, partition=partition)
                await asyncio.sleep(0.1)  # poll: pacing of the healthy stream
        await eventually(lambda: len(attempts) == 3, timeout_s=30, what="attempt 3")
        await eventually(
            lambda: len(latencies) == len(produced_at) - 1, timeout_s=30, what="healthy stream"
        )
    finally:
        consumer.request_stop()
        await task

    assert attempts[1] - attempts[0] >= delays[0]
    assert attempts[2] - attempts[1] >= delays[1]
    worst = max(lat for _, lat in latencies)
    report(
        capsys,
        f"retry gaps {attempts[1] - attempts[0]:.2f}s/{attempts[2] - attempts[1]:.2f}s "
        f"(configured {delays}); healthy events meanwhile: {len(latencies)}, worst latency "
        f"{worst * 1000:.0f} ms",
    )
    assert worst < 0.8, f"healthy events were delayed up to {worst:.2f}s"
    assert {p for p, _ in latencies} == {0, 1}
    assert consumer.stats.retried == 2 and consumer.stats.dead_lettered == 0
