"""A redriven record continues the trace its DLQ record carries (in memory)."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from streaming.clients.retry import FailureInfo, failure_headers
from streaming.replay import DlqRedriver
from streaming.replay.tracing import STREAMING_REDRIVE_ID
from streaming.telemetry import inject_headers, span_context_of
from streaming.transport.base import OutgoingRecord
from tests.unit.replay.conftest import Cluster


def _tracer() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


async def test_redrive_continues_each_records_trace_with_a_redrive_and_a_create_span(
    cluster: Cluster,
) -> None:
    provider, exporter = _tracer()
    tracer = provider.get_tracer("test")
    await cluster.topic("orders", 1)
    dlq = await cluster.topic("orders.g.dlq", 1)
    upstream = []
    records = []
    for i in range(2):  # two records of two traces, moved in one transaction
        with tracer.start_as_current_span(f"send {dlq}", kind=SpanKind.PRODUCER) as span:
            upstream.append(span.get_span_context())
            info = FailureInfo("orders", 0, i, 1, 3, "g", "E", "boom", "", 1_000)
            base = inject_headers((("event-id", f"e{i}".encode()),))
            records.append(OutgoingRecord(dlq, b"v", b"k", failure_headers(info, base=base)))
    await cluster.produce(records)
    exporter.clear()

    redriver = DlqRedriver(cluster.transport, "orders", "g", tracer=tracer)
    assert (await redriver.redrive()).redriven == 2  # a dry run moves nothing: no spans
    assert exporter.get_finished_spans() == ()
    result = await redriver.redrive(dry_run=False)

    spans = {s.context.span_id: s for s in exporter.get_finished_spans()}
    moved = cluster.transport.records("orders", read_committed=True)
    assert len(moved) == 2 and len(spans) == 4
    for record, dlq_context in zip(moved, upstream, strict=True):
        carried = span_context_of(record.headers)
        assert carried is not None and carried.trace_id == dlq_context.trace_id
        create = spans[carried.span_id]
        assert (create.name, create.kind) == ("create orders", SpanKind.PRODUCER)
        assert create.attributes is not None
        assert create.attributes["messaging.operation.type"] == "create"
        assert create.parent is not None
        redrive = spans[create.parent.span_id]
        assert (redrive.name, redrive.kind) == (f"redrive {dlq}", SpanKind.CONSUMER)
        assert redrive.parent is not None and redrive.parent.span_id == dlq_context.span_id
        assert [link.context.span_id for link in redrive.links] == [dlq_context.span_id]
        assert redrive.attributes is not None
        assert redrive.attributes[STREAMING_REDRIVE_ID] == result.redrive_id
        assert redrive.attributes["messaging.operation.type"] == "process"
        assert redrive.attributes["messaging.message.id"] == record.header("event-id").decode()
        assert [k for k, _ in record.headers].count("traceparent") == 1


async def test_a_dlq_record_without_trace_context_starts_a_new_trace(cluster: Cluster) -> None:
    provider, exporter = _tracer()
    await cluster.topic("orders", 1)
    dlq = await cluster.topic("orders.g.dlq", 1)
    await cluster.produce([OutgoingRecord(dlq, b"v", b"k", (("event-id", b"e"),))])
    await DlqRedriver(cluster.transport, "orders", "g", tracer=provider.get_tracer("test")).redrive(
        dry_run=False
    )
    [create, redrive] = sorted(exporter.get_finished_spans(), key=lambda s: s.name)
    assert redrive.parent is None and not redrive.links
    [record] = cluster.transport.records("orders", read_committed=True)
    carried = span_context_of(record.headers)
    assert carried is not None and carried.span_id == create.context.span_id
