"""ConsumerOptions, the publish middleware chain and the partition flow, on in-memory parts."""

from __future__ import annotations

import dataclasses
import typing

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import streaming
from streaming.clients.consumer import ConsumerKeywords, ConsumerOptions, EventConsumer
from streaming.clients.flow import PartitionFlow
from streaming.clients.producer import EventProducer
from streaming.clients.publish import Publish, PublishNext
from streaming.clients.retry import H_NOT_BEFORE, RetryPolicy
from streaming.errors import ConfigError
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.transport.base import Record, RecordMetadata, TopicPartition, TopicSpec
from streaming.transport.memory import InMemoryTransport
from tests.unit.clients.test_clients_unit import order


def test_the_keywords_are_exactly_the_options_fields() -> None:
    fields = {f.name: f.type for f in dataclasses.fields(ConsumerOptions)}
    assert typing.get_type_hints(ConsumerKeywords).keys() == fields.keys()
    assert streaming.ConsumerOptions is ConsumerOptions


def test_options_come_from_an_object_keywords_or_both_and_are_frozen() -> None:
    transport, registry = InMemoryTransport(), InMemorySchemaRegistryClient()
    policy = RetryPolicy(attempts=2, delays_s=(1,))
    by_keywords = EventConsumer(
        transport, registry, topics=["t"], group_id="g", retry_policy=policy, poll_timeout_ms=7
    )
    options = ConsumerOptions(topics=["t"], group_id="g", retry_policy=policy, poll_timeout_ms=7)
    by_object = EventConsumer(transport, registry, options=options)
    assert by_keywords.options == by_object.options == options
    assert options.topics == ("t",)
    overridden = EventConsumer(transport, registry, options, group_id="other")
    assert overridden.options.group_id == "other" and overridden.options.poll_timeout_ms == 7
    assert overridden.retry_topics == {"t.other.retry.1"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.group_id = "x"  # type: ignore[misc]
    with pytest.raises(ConfigError, match="at least one topic"):
        ConsumerOptions(topics=[], group_id="g")


async def test_publish_middlewares_run_inside_the_send_span_for_single_and_batch_sends() -> None:
    transport, registry = InMemoryTransport(), InMemorySchemaRegistryClient()
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec("orders", 1)])
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    seen: list[tuple[int, bool]] = []

    async def stamp(publish: Publish, call_next: PublishNext) -> list[RecordMetadata]:
        traced = all(any(k == "traceparent" for k, _ in r.headers) for r in publish.records)
        seen.append((len(publish.records), traced))
        return await call_next(publish)

    async with EventProducer(
        transport, registry, tracer=provider.get_tracer("t"), middlewares=[stamp]
    ) as producer:
        await producer.send("orders", order())
        await producer.send_many("orders", [order(), order()])
    assert seen == [(1, True), (2, True)]
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["send orders", "send orders"]
    records = transport.records("orders")
    assert [r.header("traceparent") is not None for r in records] == [True, True, True]
    batch_id = spans[1].context.trace_id
    assert {r.header("traceparent").split(b"-")[1] for r in records[1:]} == {  # type: ignore[union-attr]
        format(batch_id, "032x").encode()
    }


async def test_flow_pauses_a_partition_until_its_retry_record_is_due() -> None:
    transport = InMemoryTransport()
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec("r", 1)])
    consumer = transport.consumer(group_id=None)
    await consumer.start()
    tp = TopicPartition("r", 0)
    consumer.assign([tp])
    now = [1_000]
    flow = PartitionFlow(consumer, clock_ms=lambda: now[0], backoff_s=(0.1, 0.4))

    def record(offset: int, not_before: int | None) -> Record:
        headers = () if not_before is None else ((H_NOT_BEFORE, str(not_before).encode()),)
        return Record("r", 0, offset, 0, None, b"v", headers)

    assert not flow.not_due(tp, record(0, None), flow.generation)
    assert not flow.not_due(tp, record(0, 1_000), flow.generation)
    assert flow.not_due(tp, record(3, 1_250), flow.generation)
    assert consumer.paused() == {tp}
    assert flow.poll_timeout_ms(500) == 250
    now[0] = 1_250
    assert flow.poll_timeout_ms(500) == 500
    assert consumer.paused() == set()
    for expected_ms in (100, 200, 400, 400):  # exponential, capped
        flow.back_off(tp, record(3, None), flow.generation, "down")
        assert flow.poll_timeout_ms(500) == expected_ms
        now[0] += expected_ms
        flow.poll_timeout_ms(500)
    flow.done(tp, record(3, None), flow.generation)
    flow.back_off(tp, record(4, None), flow.generation, "down")
    assert flow.poll_timeout_ms(500) == 100  # success reset the failure count
    await consumer.stop()
