"""One trace from producer to consumer to retries to the DLQ, with links and log ids."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, MutableMapping
from decimal import Decimal
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from streaming.clients.consumer import EventConsumer
from streaming.clients.producer import EventProducer
from streaming.clients.retry import RetryPolicy
from streaming.events import OrderPlaced, OrderSide, OrderType
from streaming.logging import add_context_ids
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.testing import eventually
from streaming.testing.plugin import TopicFactory
from streaming.transport.kafka import KafkaTransport


@pytest.fixture
def log_lines() -> Iterator[list[MutableMapping[str, Any]]]:
    """structlog lines as dicts, after the package's context-id processor ran."""
    lines: list[MutableMapping[str, Any]] = []

    def keep(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
        lines.append(dict(event))
        raise structlog.DropEvent

    was_configured = structlog.is_configured()
    old = structlog.get_config()
    structlog.configure(processors=[add_context_ids, keep], cache_logger_on_first_use=False)
    try:
        yield lines
    finally:
        # Restoring defaults with configure() would mark structlog "configured" and send
        # later tests' logs to stdout through the default PrintLogger.
        if was_configured:
            structlog.configure(**old)
        else:
            structlog.reset_defaults()


async def test_spans_form_one_trace_producer_consumer_retry_dlq_with_links_and_log_ids(
    kafka_transport: KafkaTransport,
    topic_factory: TopicFactory,
    kafka_admin,  # type: ignore[no-untyped-def]
    log_lines: list[MutableMapping[str, Any]],
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    topic = await topic_factory(partitions=1)
    group = f"trace-{uuid.uuid4().hex[:6]}"
    registry = InMemorySchemaRegistryClient()
    consumer = EventConsumer(
        kafka_transport,
        registry,
        topics=[topic],
        group_id=group,
        tracer=tracer,
        retry_policy=RetryPolicy(attempts=3, delays_s=(0.1, 0.1), jitter=0),
        poll_timeout_ms=100,
    )
    handler_log = structlog.get_logger("handler")

    @consumer.handler(OrderPlaced)
    async def handle(event: OrderPlaced) -> None:
        handler_log.info("handling order", order_id=str(event.order_id))
        raise RuntimeError("always fails")

    event = OrderPlaced(
        order_id=uuid.uuid4(),
        account_id="a",
        symbol="NVDA",
        side=OrderSide.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal(3),
    )
    async with EventProducer(kafka_transport, registry, tracer=tracer) as producer:
        await producer.send(topic, event)
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(
            lambda: consumer.stats.dead_lettered >= 1, timeout_s=30, what="a dead letter"
        )
    finally:
        consumer.request_stop()
        await task
        present = await kafka_admin.list_topics()
        await kafka_admin.delete_topics([t for t in present if t.startswith(topic + ".")])

    spans = exporter.get_finished_spans()
    names = [(s.name, s.kind) for s in sorted(spans, key=lambda s: s.start_time or 0)]
    retry1, retry2, dlq = (
        f"{topic}.{group}.retry.1",
        f"{topic}.{group}.retry.2",
        f"{topic}.{group}.dlq",
    )
    assert names == [
        (f"send {topic}", SpanKind.PRODUCER),
        (f"process {topic}", SpanKind.CONSUMER),
        (f"send {retry1}", SpanKind.PRODUCER),
        (f"process {retry1}", SpanKind.CONSUMER),
        (f"send {retry2}", SpanKind.PRODUCER),
        (f"process {retry2}", SpanKind.CONSUMER),
        (f"send {dlq}", SpanKind.PRODUCER),
    ]
    trace_ids = {s.context.trace_id for s in spans}
    assert len(trace_ids) == 1, "all spans must share one trace"
    by_name = {s.name: s for s in spans}
    producer_span = by_name[f"send {topic}"]
    # Consumers are children of the span that produced their record, and link to it.
    assert by_name[f"process {topic}"].parent.span_id == producer_span.context.span_id
    assert [link.context.span_id for link in by_name[f"process {topic}"].links] == [
        producer_span.context.span_id
    ]
    assert by_name[f"process {retry1}"].parent.span_id == by_name[f"send {retry1}"].context.span_id
    # Re-produced records link to the context they came with.
    assert by_name[f"send {retry1}"].links[0].context.span_id == producer_span.context.span_id
    assert (
        by_name[f"send {dlq}"].links[0].context.span_id == by_name[f"send {retry2}"].context.span_id
    )
    for name in (f"process {topic}", f"process {retry1}", f"process {retry2}"):
        attrs = by_name[name].attributes
        assert attrs["messaging.system"] == "kafka"
        assert attrs["messaging.consumer.group.name"] == group
        assert attrs["messaging.operation.type"] == "process"
        assert attrs["error.type"] == "RuntimeError"
        assert "messaging.kafka.offset" in attrs
    handler_lines = [line for line in log_lines if line.get("event") == "handling order"]
    assert len(handler_lines) == 3
    trace_hex = format(next(iter(trace_ids)), "032x")
    assert all(line["trace_id"] == trace_hex and line.get("span_id") for line in handler_lines)
