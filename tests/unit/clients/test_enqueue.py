"""``EventProducer.enqueue``'s fast path on the in-memory transport: metrics, tracing on,
sampled out and off, middlewares, refusals."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import StatusCode, Tracer
from opentelemetry.util._once import Once

from streaming.clients.producer import EventProducer
from streaming.clients.publish import Publish, PublishNext
from streaming.errors import TopicError
from streaming.events import OrderPlaced
from streaming.events.fake import fake_events
from streaming.serde.errors import SerializeError
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.telemetry import MessagingInstruments
from streaming.testing import eventually
from streaming.transport.base import RecordMetadata, TopicSpec
from streaming.transport.memory import InMemoryTransport

SENT = "messaging.client.sent.messages"


def orders(n: int) -> list[OrderPlaced]:
    return [
        e for e in fake_events(OrderPlaced, n, rng=random.Random(7)) if isinstance(e, OrderPlaced)
    ]


async def transport_with(topic: str = "orders") -> InMemoryTransport:
    transport = InMemoryTransport()
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec(topic, 2)])
    return transport


def sent_points(reader: InMemoryMetricReader) -> list[tuple[int, dict[str, Any]]]:
    data = reader.get_metrics_data()
    if data is None:
        return []
    return [
        (point.value, dict(point.attributes or {}))
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == SENT
        for point in metric.data.data_points
    ]


def instruments() -> tuple[MessagingInstruments, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    return MessagingInstruments.create(meter), reader


def tracer_and_spans(**options: Any) -> tuple[Tracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(**options)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


@pytest.fixture
def no_tracer_provider() -> Iterator[None]:
    """No global tracer provider, as in a fresh process; the previous one back afterwards."""
    saved = (trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE)
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = None, Once()
    try:
        yield
    finally:
        trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = saved


async def test_enqueued_records_are_counted_by_the_time_their_futures_resolve() -> None:
    inst, reader = instruments()
    transport = await transport_with()
    async with EventProducer(transport, InMemorySchemaRegistryClient(), instruments=inst) as p:
        await asyncio.gather(*[await p.enqueue("orders", e) for e in orders(7)])
        [(count, attributes)] = sent_points(reader)
    assert count == 7
    assert attributes["messaging.destination.name"] == "orders"
    assert "error.type" not in attributes


async def test_errors_before_buffering_raise_and_count_as_failed() -> None:
    inst, reader = instruments()
    transport = await transport_with()
    async with EventProducer(transport, InMemorySchemaRegistryClient(), instruments=inst) as p:
        with pytest.raises(TopicError):
            await p.enqueue("orders", orders(1)[0], partition=9)
        bad = orders(1)[0].model_copy(update={"symbol": None})  # skips validation
        with pytest.raises(SerializeError):
            await p.enqueue("orders", bad)
    [(count, attributes)] = sent_points(reader)
    assert count == 1  # the serialization error raised before any send
    assert attributes["error.type"].endswith("TopicError")


@pytest.mark.usefixtures("no_tracer_provider")
async def test_without_a_tracer_provider_records_carry_no_trace_context() -> None:
    transport = await transport_with()
    async with EventProducer(transport, InMemorySchemaRegistryClient()) as p:
        await (await p.enqueue("orders", orders(1)[0]))
    [record] = transport.records("orders")
    assert record.header("traceparent") is None
    assert record.header("event-id") is not None


@pytest.mark.usefixtures("no_tracer_provider")
async def test_a_provider_set_after_the_producer_was_made_gets_its_spans() -> None:
    transport = await transport_with()
    async with EventProducer(transport, InMemorySchemaRegistryClient()) as p:
        await (await p.enqueue("orders", orders(1)[0]))
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        meta = await (await p.enqueue("orders", orders(1)[0]))
    # The span ends in the future's done callback (a done future's runs next loop turn).
    await eventually(lambda: len(exporter.get_finished_spans()) == 1, what="the send span")
    [span] = exporter.get_finished_spans()
    assert span.name == "send orders"
    assert span.attributes is not None and span.attributes["messaging.kafka.offset"] == meta.offset


async def test_a_sampled_out_send_carries_its_unsampled_context_and_records_no_span() -> None:
    tracer, exporter = tracer_and_spans(sampler=ALWAYS_OFF)
    transport = await transport_with()
    async with EventProducer(transport, InMemorySchemaRegistryClient(), tracer=tracer) as p:
        await (await p.enqueue("orders", orders(1)[0]))
    [record] = transport.records("orders")
    traceparent = record.header("traceparent")
    assert traceparent is not None and int(traceparent[-2:], 16) & 1 == 0  # not sampled
    assert exporter.get_finished_spans() == ()


async def test_each_traced_record_gets_its_own_span_ended_with_its_offset() -> None:
    tracer, exporter = tracer_and_spans()
    transport = await transport_with()
    events = orders(4)
    async with EventProducer(transport, InMemorySchemaRegistryClient(), tracer=tracer) as p:
        metas = await asyncio.gather(*[await p.enqueue("orders", e) for e in events])
    spans = exporter.get_finished_spans()
    by_id = {s.attributes["messaging.message.id"]: s for s in spans if s.attributes}
    for event, meta in zip(events, metas, strict=True):
        span = by_id[str(event.event_id)]
        assert span.attributes is not None
        assert span.attributes["messaging.kafka.offset"] == meta.offset
        [record] = [
            r
            for r in transport.records("orders")
            if r.offset == meta.offset and r.partition == meta.partition
        ]
        context = span.get_span_context()
        assert (record.header("traceparent") or b"")[:-2] == (
            f"00-{context.trace_id:032x}-{context.span_id:016x}-".encode()
        )


async def test_with_middlewares_enqueue_runs_them_and_still_counts() -> None:
    inst, reader = instruments()
    seen: list[str] = []

    async def note(publish: Publish, call_next: PublishNext) -> list[RecordMetadata]:
        seen.append(publish.message_id or "")
        return await call_next(publish)

    async def answer(publish: Publish, call_next: PublishNext) -> list[RecordMetadata]:
        if publish.message_id == seen[-1] and len(seen) == 2:
            return [RecordMetadata(publish.topic, 0, 99, 0)]  # answered without the broker
        return await call_next(publish)

    transport = await transport_with()
    events = orders(2)
    async with EventProducer(
        transport, InMemorySchemaRegistryClient(), instruments=inst, middlewares=[note, answer]
    ) as p:
        first = await (await p.enqueue("orders", events[0]))
        second = await (await p.enqueue("orders", events[1]))
    assert seen == [str(e.event_id) for e in events]
    assert second.offset == 99 and first.offset == 0
    assert [count for count, _ in sent_points(reader)] == [2]


async def test_a_send_refused_before_buffering_ends_its_span_as_failed() -> None:
    tracer, exporter = tracer_and_spans()
    transport = await transport_with()
    async with EventProducer(transport, InMemorySchemaRegistryClient(), tracer=tracer) as p:
        with pytest.raises(TopicError):
            await p.enqueue("orders", orders(1)[0], partition=9)
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert str(span.attributes["error.type"]).endswith("TopicError")
    assert any(event.name == "exception" for event in span.events)
