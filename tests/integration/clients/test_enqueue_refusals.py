"""``EventProducer.enqueue`` on a real broker: a write the broker refuses fails its future
(and only its batch), and the sent-messages metric counts it as failed."""

from __future__ import annotations

import asyncio
import random

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from streaming.clients.producer import EventProducer
from streaming.errors import TransportError
from streaming.events import OrderPlaced
from streaming.events.fake import fake_events
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.telemetry import MessagingInstruments
from streaming.testing.plugin import TopicFactory
from streaming.transport.kafka import KafkaTransport


def sent_by_outcome(reader: InMemoryMetricReader) -> dict[str, int]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        str((point.attributes or {}).get("error.type", "ok")): int(point.value)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "messaging.client.sent.messages"
        for point in metric.data.data_points
    }


async def test_a_record_the_broker_refuses_fails_its_future_and_counts_as_failed(
    kafka_transport: KafkaTransport, topic_factory: TopicFactory
) -> None:
    topic = await topic_factory(1, prefix="refuse", config={"max.message.bytes": "2000"})
    reader = InMemoryMetricReader()
    instruments = MessagingInstruments.create(MeterProvider(metric_readers=[reader]).get_meter("t"))
    small, big = list(fake_events(OrderPlaced, 2, rng=random.Random(4)))
    big = big.model_copy(update={"client_order_id": "x" * 5000})  # over the topic's limit
    async with EventProducer(
        kafka_transport, InMemorySchemaRegistryClient(), instruments=instruments
    ) as producer:
        refused = await producer.enqueue(topic, big)  # buffered: the producer's limit is 1 MiB
        with pytest.raises(TransportError, match="MessageSizeTooLarge"):
            await refused
        counts = sent_by_outcome(reader)  # counted by the time the future failed
        assert sum(v for k, v in counts.items() if k != "ok") == 1
        accepted = await asyncio.wait_for(await producer.enqueue(topic, small), 30)
    assert accepted.topic == topic
    assert sent_by_outcome(reader).get("ok") == 1
