"""Tracing, propagation and metrics helpers, checked with the SDK's in-memory exporters."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from streaming.config import OtelSettings
from streaming.telemetry import (
    Telemetry,
    add_trace_context,
    configure_telemetry,
    extract_context,
    inject_headers,
    links_to,
    metric_attributes,
    process_span,
    record_sent,
    send_span,
    span_context_of,
)
from streaming.transport.base import Record, RecordMetadata


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def telemetry(exporter: InMemorySpanExporter, reader: InMemoryMetricReader) -> Iterator[Telemetry]:
    t = configure_telemetry(
        OtelSettings(service_name="unit"),
        span_processors=[SimpleSpanProcessor(exporter)],
        metric_readers=[reader],
        set_global=False,
    )
    yield t
    t.shutdown()


def _by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def _produce(t: Telemetry, topic: str, headers: tuple[tuple[str, bytes], ...] = ()) -> Record:
    """What the producer does: a send span whose context goes into the headers."""
    with send_span(t.tracer, topic, key=b"acc-1", value=b"body", message_id="e-1") as span:
        out = inject_headers((("event-id", b"e-1"), *headers))
        record_sent(span, RecordMetadata(topic, 2, 17, 0))
    return Record(topic, 2, 17, 0, b"acc-1", b"body", out)


def test_configuring_without_set_global_leaves_the_globals_alone(telemetry: Telemetry) -> None:
    assert trace.get_tracer_provider() is not telemetry.tracer_provider


def test_disabled_signals_get_non_recording_providers() -> None:
    t = configure_telemetry(
        OtelSettings(traces_enabled=False, metrics_enabled=False), set_global=False
    )
    with send_span(t.tracer, "orders") as span:
        assert not span.is_recording()
    t.instruments.sent.add(1)  # a no-op, not an error
    t.shutdown()


def test_producer_span_follows_the_messaging_conventions(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    _produce(telemetry, "orders")
    span = _by_name(exporter)["send orders"]
    assert span.kind is SpanKind.PRODUCER
    assert dict(span.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.destination.name": "orders",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.kafka.message.key": "acc-1",
        "messaging.message.body.size": 4,
        "messaging.message.id": "e-1",
        "messaging.destination.partition.id": "2",
        "messaging.kafka.offset": 17,
    }


def test_consumer_span_continues_the_producer_trace_as_child_and_link(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    record = _produce(telemetry, "orders")
    with process_span(telemetry.tracer, record, group="billing", message_id="e-1"):
        pass
    spans = _by_name(exporter)
    send, process = spans["send orders"], spans["process orders"]
    assert process.kind is SpanKind.CONSUMER
    assert process.context.trace_id == send.context.trace_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert [link.context.span_id for link in process.links] == [send.context.span_id]
    attributes = dict(process.attributes or {})
    assert attributes["messaging.consumer.group.name"] == "billing"
    assert attributes["messaging.destination.partition.id"] == "2"
    assert attributes["messaging.kafka.offset"] == 17
    assert attributes["messaging.operation.type"] == "process"
    assert attributes["messaging.operation.name"] == "process"


def test_retry_and_dlq_spans_share_one_trace_and_link_to_the_original(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    tracer = telemetry.tracer
    original = _produce(telemetry, "orders")
    with (
        process_span(tracer, original, group="g"),
        send_span(tracer, "orders.g.retry.1", links=links_to(original.headers)),
    ):
        retry_headers = inject_headers(original.headers)
    retried = Record("orders.g.retry.1", 2, 0, 0, b"acc-1", b"body", retry_headers)
    with (
        process_span(tracer, retried, group="g"),
        send_span(tracer, "orders.g.dlq", links=links_to(original.headers)),
    ):
        dlq_headers = inject_headers(retried.headers)

    spans = _by_name(exporter)
    assert len({s.context.trace_id for s in spans.values()}) == 1
    first_send = spans["send orders"].context
    assert [link.context.span_id for link in spans["send orders.g.retry.1"].links] == [
        first_send.span_id
    ]
    assert [link.context.span_id for link in spans["send orders.g.dlq"].links] == [
        first_send.span_id
    ]
    assert spans["process orders.g.retry.1"].parent.span_id == (  # type: ignore[union-attr]
        spans["send orders.g.retry.1"].context.span_id
    )
    assert [k for k, _ in dlq_headers].count("traceparent") == 1


def test_inject_replaces_trace_headers_instead_of_appending(telemetry: Telemetry) -> None:
    stale = (
        ("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"),
        ("tracestate", b"a=b"),
    )
    with send_span(telemetry.tracer, "orders") as span:
        headers = inject_headers((("event-id", b"e"), *stale, ("content-type", b"avro")))
        current = span.get_span_context()
    assert [k for k, _ in headers] == ["event-id", "content-type", "traceparent"]
    extracted = span_context_of(headers)
    assert extracted is not None
    assert (extracted.trace_id, extracted.span_id) == (current.trace_id, current.span_id)


def test_extract_prefers_the_newest_repeated_traceparent() -> None:
    old = b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"
    new = b"00-" + b"3" * 32 + b"-" + b"4" * 16 + b"-01"
    found = span_context_of((("traceparent", old), ("traceparent", new)))
    assert found is not None and found.trace_id == int("3" * 32, 16)


def test_records_without_trace_headers_start_a_new_trace(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    assert span_context_of(()) is None
    assert links_to((("traceparent", b"garbage"),)) == []
    assert trace.get_current_span(extract_context(())).get_span_context().is_valid is False
    with process_span(telemetry.tracer, Record("t", 0, 0, 0, None, None), group=None):
        pass
    [span] = exporter.get_finished_spans()
    assert span.parent is None and not span.links
    attributes = dict(span.attributes or {})
    assert attributes["messaging.kafka.message.tombstone"] is True
    assert "messaging.consumer.group.name" not in attributes
    assert "messaging.kafka.message.key" not in attributes


def test_binary_keys_are_not_recorded(telemetry: Telemetry, exporter: InMemorySpanExporter) -> None:
    with send_span(telemetry.tracer, "t", key=b"\xff\xfe"):
        pass
    [span] = exporter.get_finished_spans()
    assert "messaging.kafka.message.key" not in dict(span.attributes or {})


def test_a_failure_sets_error_type_and_error_status(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    class PricingDown(Exception):
        pass

    record = Record("orders", 0, 5, 0, b"k", b"v")
    with pytest.raises(PricingDown), process_span(telemetry.tracer, record, group="g"):
        raise PricingDown("503")
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})["error.type"].endswith("PricingDown")
    assert any(event.name == "exception" for event in span.events)


def test_log_lines_inside_a_span_carry_its_ids(telemetry: Telemetry) -> None:
    assert add_trace_context(None, "info", {"event": "outside"}) == {"event": "outside"}
    with process_span(telemetry.tracer, Record("t", 0, 0, 0, None, b""), group="g") as span:
        event = add_trace_context(None, "info", {"event": "inside"})
        ctx = span.get_span_context()
    assert event["trace_id"] == format(ctx.trace_id, "032x")
    assert event["span_id"] == format(ctx.span_id, "016x")


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[Any]] = {}
    for resource_metrics in data.resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                found[f"{metric.name} [{metric.unit}]"] = list(metric.data.data_points)
    return found


def test_instruments_record_with_semantic_names_units_and_attributes(
    telemetry: Telemetry, reader: InMemoryMetricReader
) -> None:
    inst = telemetry.instruments
    sent_attrs = metric_attributes("orders", operation="send", partition=1)
    inst.sent.add(3, sent_attrs)
    inst.consumed.add(2, metric_attributes("orders", operation="process", group="g"))
    inst.process_duration.record(0.02, metric_attributes("orders", operation="process"))
    inst.retried.add(1, metric_attributes("orders", operation="process", error=KeyError()))
    inst.dead_lettered.add(1, metric_attributes("orders", operation="process"))
    inst.lag.set(group="g", topic="orders", partition=1, lag=42)
    inst.lag.set(group="g", topic="orders", partition=2, lag=-5)

    points = _points(reader)
    assert points["messaging.client.sent.messages [{message}]"][0].value == 3
    assert dict(points["messaging.client.sent.messages [{message}]"][0].attributes) == {
        "messaging.system": "kafka",
        "messaging.destination.name": "orders",
        "messaging.operation.name": "send",
        "messaging.destination.partition.id": "1",
    }
    assert points["messaging.client.consumed.messages [{message}]"][0].value == 2
    assert points["messaging.process.duration [s]"][0].count == 1
    retried = points["streaming.retry.messages [{message}]"][0]
    assert retried.attributes["error.type"] == "KeyError"
    assert points["streaming.dlq.messages [{message}]"][0].value == 1
    lags = sorted(p.value for p in points["streaming.consumer.lag [{message}]"])
    assert lags == [0, 42]

    inst.lag.forget(group="g", topic="orders", partition=1)
    inst.lag.forget(group="g", topic="orders", partition=2)
    assert "streaming.consumer.lag [{message}]" not in _points(reader)


class _Collector(BaseHTTPRequestHandler):
    paths: list[tuple[str, str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.paths.append((self.path, self.headers.get("Content-Type", "")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_an_otlp_endpoint_receives_spans_and_metrics_over_http() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}/"
        t = configure_telemetry(
            OtelSettings(service_name="unit", exporter_otlp_endpoint=endpoint), set_global=False
        )
        with send_span(t.tracer, "orders"):
            pass
        t.instruments.sent.add(1, metric_attributes("orders", operation="send"))
        t.shutdown()  # flushes both exporters synchronously
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert ("/v1/traces", "application/x-protobuf") in _Collector.paths
    assert ("/v1/metrics", "application/x-protobuf") in _Collector.paths
