"""Clients record metrics to the global providers by default, as the messaging semantic
conventions name them (issue 17, items 2 and 3).

Only the global OpenTelemetry providers are configured (no ``instruments=``, no
``tracer=``); the names, units and attributes read back are checked against the
conventions as published in ``opentelemetry-semantic-conventions``. The CLI part runs
``streaming produce`` and ``streaming consume`` as subprocesses exporting OTLP/HTTP to a
receiver on loopback that decodes the protobuf ``ExportMetricsServiceRequest``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as metrics_api
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import messaging_attributes as msg
from opentelemetry.semconv._incubating.metrics import messaging_metrics as semconv
from opentelemetry.semconv.attributes import error_attributes, server_attributes
from opentelemetry.util._once import Once

from streaming.clients.consumer import EventConsumer
from streaming.clients.producer import EventProducer
from streaming.clients.retry import RetryPolicy
from streaming.config import OtelSettings
from streaming.events import OrderPlaced
from streaming.events.fake import fake_events
from streaming.serde.client import SchemaRegistryClient
from streaming.telemetry import configure_telemetry
from streaming.testing import eventually
from streaming.testing.plugin import TopicFactory
from streaming.transport.base import AdminTransport
from streaming.transport.kafka import KafkaTransport

#: Attributes the conventions define for the messaging client metrics.
ALLOWED = {
    error_attributes.ERROR_TYPE,
    msg.MESSAGING_CONSUMER_GROUP_NAME,
    msg.MESSAGING_DESTINATION_NAME,
    msg.MESSAGING_DESTINATION_PARTITION_ID,
    msg.MESSAGING_DESTINATION_SUBSCRIPTION_NAME,
    msg.MESSAGING_DESTINATION_TEMPLATE,
    msg.MESSAGING_OPERATION_NAME,
    msg.MESSAGING_SYSTEM,
    server_attributes.SERVER_ADDRESS,
    server_attributes.SERVER_PORT,
}
REQUIRED = {msg.MESSAGING_OPERATION_NAME, msg.MESSAGING_SYSTEM, msg.MESSAGING_DESTINATION_NAME}


def _convention_units() -> dict[str, str]:
    """Name -> unit of the messaging metrics, as the conventions package creates them."""
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("conventions")
    semconv.create_messaging_client_sent_messages(meter).add(1)
    semconv.create_messaging_client_consumed_messages(meter).add(1)
    semconv.create_messaging_process_duration(meter).record(1.0)
    return {m.name: m.unit for m in _metrics(reader)}


def _metrics(reader: InMemoryMetricReader) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]


@pytest.fixture
def fresh_globals() -> Iterator[None]:
    """No global providers, as in a fresh process (CLI tests run under CliRunner install
    theirs), and the previous ones back afterwards; what opentelemetry-test-utils'
    ``reset_trace_globals``/``reset_metrics_globals`` do."""
    saved = (
        trace._TRACER_PROVIDER,
        trace._TRACER_PROVIDER_SET_ONCE,
        metrics_api._METER_PROVIDER,
        metrics_api._METER_PROVIDER_SET_ONCE,
    )
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = None, Once()
    metrics_api._METER_PROVIDER, metrics_api._METER_PROVIDER_SET_ONCE = None, Once()
    try:
        yield
    finally:
        (
            trace._TRACER_PROVIDER,
            trace._TRACER_PROVIDER_SET_ONCE,
            metrics_api._METER_PROVIDER,
            metrics_api._METER_PROVIDER_SET_ONCE,
        ) = saved


@pytest.mark.usefixtures("fresh_globals")
async def test_clients_record_convention_metrics_to_the_global_providers(
    kafka_transport: KafkaTransport,
    kafka_admin: AdminTransport,
    topic_factory: TopicFactory,
    schema_registry: SchemaRegistryClient,
) -> None:
    reader, spans = InMemoryMetricReader(), InMemorySpanExporter()
    telemetry = configure_telemetry(
        OtelSettings(service_name="metrics-test"),
        metric_readers=[reader],
        span_processors=[SimpleSpanProcessor(spans)],
    )
    assert metrics.get_meter_provider() is telemetry.meter_provider, "globals set elsewhere"
    topic = await topic_factory(2, prefix="metrics")
    group = f"metrics-{uuid.uuid4().hex[:6]}"
    events = list(fake_events(OrderPlaced, 5))
    poison = events[2].event_id
    try:
        async with EventProducer(kafka_transport, schema_registry) as producer:
            await producer.send_many(topic, events)
        consumer = EventConsumer(
            kafka_transport,
            schema_registry,
            topics=[topic],
            group_id=group,
            retry_policy=RetryPolicy(attempts=3, delays_s=(0.1, 0.1), jitter=0),
            poll_timeout_ms=100,
        )

        @consumer.handler(OrderPlaced)
        async def handle(event: OrderPlaced) -> None:
            if event.event_id == poison:
                raise ValueError("always fails")

        task = asyncio.create_task(consumer.run())
        try:
            await eventually(
                lambda: consumer.stats.dead_lettered == 1,
                timeout_s=60,
                what="the poison in the DLQ",
            )
        finally:
            consumer.request_stop()
            await task
    finally:
        present = await kafka_admin.list_topics()
        await kafka_admin.delete_topics([t for t in present if t.startswith(topic + ".")])
    try:
        found = {m.name: m for m in _metrics(reader)}
        finished = spans.get_finished_spans()
    finally:
        telemetry.shutdown()
    # Names and units as the conventions define them.
    for name, unit in _convention_units().items():
        assert name in found, f"{name} was not recorded"
        assert found[name].unit == unit, name
    points: dict[str, list[tuple[dict[str, Any], float]]] = {
        name: [
            (dict(p.attributes), getattr(p, "value", None) or getattr(p, "count", 0))
            for p in m.data.data_points
        ]
        for name, m in found.items()
    }
    for name in _convention_units():
        for attributes, _ in points[name]:
            assert attributes.keys() >= REQUIRED, (name, attributes)
            assert attributes.keys() <= ALLOWED, (name, attributes.keys() - ALLOWED)
            assert attributes[msg.MESSAGING_SYSTEM] == "kafka"
    # Sent: five records to the topic (retry/DLQ writes are counted by their own metrics).
    sent = [(a, v) for a, v in points[semconv.MESSAGING_CLIENT_SENT_MESSAGES]]
    assert sum(v for a, v in sent if a[msg.MESSAGING_DESTINATION_NAME] == topic) == 5
    # Consumed: every delivery to the application, failed ones with error.type: 5 first
    # deliveries + 2 retries, of which the poison's 3 failed.
    consumed = points[semconv.MESSAGING_CLIENT_CONSUMED_MESSAGES]
    assert sum(v for _, v in consumed) == 7
    by_error = Counter()
    for attributes, value in consumed:
        assert attributes[msg.MESSAGING_CONSUMER_GROUP_NAME] == group
        assert attributes[msg.MESSAGING_OPERATION_NAME] == "process"
        by_error[attributes.get(error_attributes.ERROR_TYPE)] += value
    assert by_error == {None: 4, "ValueError": 3}
    # Durations are recorded once per partition batch and outcome, not per record.
    durations = points[semconv.MESSAGING_PROCESS_DURATION]
    assert 2 <= sum(v for _, v in durations) <= 7
    assert {a.get(error_attributes.ERROR_TYPE) for a, _ in durations} == {None, "ValueError"}
    assert sum(v for _, v in points["streaming.retry.messages"]) == 2
    assert sum(v for _, v in points["streaming.dlq.messages"]) == 1
    # Retry and DLQ send spans carry the message id, like the original send.
    sends = [s for s in finished if s.kind == trace.SpanKind.PRODUCER]
    rerouted = [s for s in sends if ".retry." in s.name or s.name.endswith(".dlq")]
    assert len(rerouted) == 3
    assert {s.attributes[msg.MESSAGING_MESSAGE_ID] for s in rerouted} == {str(poison)}


class _Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP (protobuf) endpoint: keeps every decoded metrics export."""

    exports: list[ExportMetricsServiceRequest]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/v1/metrics":
            assert self.headers.get("Content-Type") == "application/x-protobuf"
            request = ExportMetricsServiceRequest()
            request.ParseFromString(body)
            self.exports.append(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[ExportMetricsServiceRequest]]]:
    exports: list[ExportMetricsServiceRequest] = []
    handler = type("Receiver", (_Receiver,), {"exports": exports})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", exports
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _sums(
    exports: list[ExportMetricsServiceRequest], name: str
) -> list[tuple[dict[str, str], int]]:
    """The newest value of each series of counter ``name`` (exports are cumulative: the
    command flushes before it ends and the SDK exports once more at interpreter exit)."""
    newest: dict[frozenset[tuple[str, str]], int] = {}
    for export in exports:
        for rm in export.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name != name:
                        continue
                    assert metric.unit == "{message}"
                    assert metric.sum.is_monotonic
                    for point in metric.sum.data_points:
                        attrs = {kv.key: kv.value.string_value for kv in point.attributes}
                        newest[frozenset(attrs.items())] = point.as_int
    return [(dict(key), value) for key, value in newest.items()]


async def test_short_lived_cli_commands_flush_their_metrics_over_otlp_before_exiting(
    kafka_transport: KafkaTransport,
    topic_factory: TopicFactory,
    registry_url: str,
    receiver: tuple[str, list[ExportMetricsServiceRequest]],
) -> None:
    endpoint, exports = receiver
    topic = await topic_factory(1, prefix="otlp-cli")
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_transport.settings.bootstrap_servers,
        "REGISTRY_URL": registry_url,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_SERVICE_NAME": "otlp-cli-test",
    }

    def run(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "streaming", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr

    await asyncio.to_thread(
        run, "produce", "--topic", topic, "--type", "OrderPlaced", "--fake", "7"
    )
    # The command has exited: its metrics must already be here (the export interval is 60 s).
    sent = _sums(exports, semconv.MESSAGING_CLIENT_SENT_MESSAGES)
    assert [v for a, v in sent if a[msg.MESSAGING_DESTINATION_NAME] == topic] == [7]
    [(attributes, _)] = [(a, v) for a, v in sent if a[msg.MESSAGING_DESTINATION_NAME] == topic]
    assert attributes[msg.MESSAGING_SYSTEM] == "kafka"
    assert attributes[msg.MESSAGING_OPERATION_NAME] == "send"
    service = {
        kv.value.string_value
        for e in exports
        for rm in e.resource_metrics
        for kv in rm.resource.attributes
        if kv.key == "service.name"
    }
    assert service == {"otlp-cli-test"}

    await asyncio.to_thread(
        run, "consume", "--topic", topic, "--from-beginning", "--max", "7", "--json"
    )
    consumed = _sums(exports, semconv.MESSAGING_CLIENT_CONSUMED_MESSAGES)
    assert sum(v for a, v in consumed if a[msg.MESSAGING_DESTINATION_NAME] == topic) == 7
