"""Batch handlers on a real broker, checked with an independent client (confluent-kafka)."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as CTP

from streaming import BatchFailure
from streaming.clients.consumer import EventConsumer
from streaming.clients.producer import EventProducer
from streaming.clients.retry import RetryPolicy
from streaming.events import OrderPlaced
from streaming.events.fake import fake_events
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.testing import eventually
from streaming.testing.plugin import TopicFactory
from streaming.transport.kafka import KafkaTransport

pytestmark = pytest.mark.integration


class NotYet(Exception):
    """The first delivery of a chosen record fails."""


def _read(bootstrap: str, group: str, topic: str, partitions: int) -> tuple[list[int], list[str]]:
    """Committed offsets of ``group`` on ``topic`` and every event id in ``<topic>...retry.1``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        try:
            committed = probe.committed([CTP(topic, p) for p in range(partitions)], timeout=10)
        finally:
            probe.close()
        consumer.subscribe([f"{topic}.{group}.retry.1"])
        ids: list[str] = []
        idle = 0
        while idle < 5:
            message = consumer.poll(1.0)
            if message is None:
                idle += 1
                continue
            if message.error() is None:
                ids += [v.decode() for k, v in message.headers() or [] if k == "event-id"]
        return [tp.offset for tp in committed], ids
    finally:
        consumer.close()


async def test_batch_failures_retry_one_record_each_and_every_offset_is_committed(
    kafka_transport: KafkaTransport, topic_factory: TopicFactory, cleanup: list[str]
) -> None:
    topic = await topic_factory(partitions=2)
    cleanup.append(topic)
    registry = InMemorySchemaRegistryClient()
    events = list(fake_events(OrderPlaced, 400, rng=random.Random(15), keys=40))
    chosen = {e.event_id for e in events[7::50]}
    async with EventProducer(kafka_transport, registry) as producer:
        metas = await asyncio.gather(*[await producer.enqueue(topic, e) for e in events])
    ends = [1 + max(m.offset for m in metas if m.partition == p) for p in (0, 1)]

    group = f"batch-{uuid.uuid4().hex[:6]}"
    consumer = EventConsumer(
        kafka_transport,
        registry,
        topics=[topic],
        group_id=group,
        retry_policy=RetryPolicy(attempts=2, delays_s=(0.2,), jitter=0),
        session_timeout_ms=6_000,
        poll_timeout_ms=200,
    )
    handled: list[uuid.UUID] = []
    failed: set[uuid.UUID] = set()

    @consumer.batch_handler(OrderPlaced)
    async def handle(batch: list[OrderPlaced]) -> None:
        for index, event in enumerate(batch):
            if event.event_id in chosen and event.event_id not in failed:
                failed.add(event.event_id)
                raise BatchFailure(index, NotYet(str(event.event_id)))
            handled.append(event.event_id)

    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: len(set(handled)) == 400, timeout_s=90, what="400 events")
        await eventually(lambda: consumer.stats.commits > 0, what="a commit")
    finally:
        consumer.request_stop()
        await asyncio.wait_for(task, 30)
    # Records before a failure are handled once; the failed one after its retry.
    assert sorted(map(str, handled)) == sorted(str(e.event_id) for e in events)
    assert consumer.stats.retried == len(chosen) and consumer.stats.dead_lettered == 0
    bootstrap = kafka_transport.settings.bootstrap_servers
    committed, retried = await asyncio.to_thread(_read, bootstrap, group, topic, 2)
    assert committed == ends
    assert sorted(retried) == sorted(str(i) for i in chosen)
