"""OpenTelemetry for Kafka clients: providers, W3C context in headers, spans and metrics.

Spans and attributes follow the OpenTelemetry messaging semantic conventions (v1.27+
names: ``messaging.operation.type``, ``messaging.consumer.group.name``,
``messaging.kafka.offset``): the producer span is ``send <topic>`` (PRODUCER) and its
context travels in the ``traceparent``/``tracestate`` headers; the consumer span is
``process <topic>`` (CONSUMER), a child of that context and linked to it, so producer,
consumer, retry and DLQ spans land in one trace.

Importing this module changes nothing global; :func:`configure_telemetry` builds the
providers and installs them globally only when asked to. Clients built without
``instruments=`` record to the global meter provider (:func:`global_instruments`), as
OpenTelemetry instrumentation libraries do; :func:`command_telemetry` sets it up for one
CLI command and flushes on the way out.

Why it is long (~540 lines): providers, header propagation, span scopes and the
messaging instruments must agree on one set of semantic-convention names; splitting
them would spread those names over several modules.
"""

from __future__ import annotations

import collections
import weakref
from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import Token
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, cast
from wsgiref.simple_server import WSGIServer

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.semconv._incubating.metrics import messaging_metrics as semconv_metrics
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CollectorRegistry, start_http_server

from streaming.config import OtelSettings
from streaming.core.headers import TRACE_HEADERS
from streaming.transport.base import Headers, Record, RecordMetadata

INSTRUMENTATION_NAME = "streaming"

# Attribute names (OpenTelemetry semantic conventions, messaging + Kafka, v1.27 and later).
MESSAGING_SYSTEM = "messaging.system"
MESSAGING_DESTINATION_NAME = "messaging.destination.name"
MESSAGING_DESTINATION_PARTITION_ID = "messaging.destination.partition.id"
MESSAGING_KAFKA_OFFSET = "messaging.kafka.offset"
MESSAGING_KAFKA_MESSAGE_KEY = "messaging.kafka.message.key"
MESSAGING_KAFKA_MESSAGE_TOMBSTONE = "messaging.kafka.message.tombstone"
MESSAGING_CONSUMER_GROUP_NAME = "messaging.consumer.group.name"
MESSAGING_OPERATION_TYPE = "messaging.operation.type"
MESSAGING_OPERATION_NAME = "messaging.operation.name"
MESSAGING_MESSAGE_ID = "messaging.message.id"
MESSAGING_MESSAGE_BODY_SIZE = "messaging.message.body.size"
ERROR_TYPE = "error.type"
KAFKA = "kafka"

#: Bucket boundaries the conventions recommend for messaging durations (seconds).
DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)

_W3C = TraceContextTextMapPropagator()


# --------------------------------------------------------------------------- providers


@dataclass(frozen=True)
class Telemetry:
    """The providers, tracer and instruments one process uses; pass it where needed."""

    tracer_provider: trace.TracerProvider
    meter_provider: metrics.MeterProvider
    tracer: Tracer
    instruments: MessagingInstruments
    scrape_server: WSGIServer | None = field(default=None, repr=False)

    @property
    def metrics_port(self) -> int | None:
        """The port of the Prometheus ``/metrics`` endpoint, if one is serving."""
        return None if self.scrape_server is None else int(self.scrape_server.server_port)

    def shutdown(self) -> None:
        """Flush and stop exporters (call once at process exit)."""
        if self.scrape_server is not None:
            self.scrape_server.shutdown()
            self.scrape_server.server_close()
        for provider in (self.tracer_provider, self.meter_provider):
            if isinstance(provider, TracerProvider | MeterProvider):
                provider.shutdown()


def configure_telemetry(
    settings: OtelSettings,
    *,
    span_processors: Sequence[SpanProcessor] = (),
    metric_readers: Sequence[MetricReader] = (),
    set_global: bool = True,
) -> Telemetry:
    """Build tracer and meter providers for ``settings``.

    With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, spans and metrics go to that OTLP/HTTP
    collector (a signal whose ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` is
    ``none`` stays off it); with ``OTEL_PROMETHEUS_PORT`` set, metrics are also served for
    Prometheus to scrape (``/metrics``); extra processors/readers (e.g. in-memory ones in
    tests) are added as given. Disabled signals get no-op providers. ``set_global=False`` leaves the
    OpenTelemetry globals alone.
    """
    resource = Resource.create({SERVICE_NAME: settings.service_name})
    endpoint = (settings.exporter_otlp_endpoint or "").rstrip("/")

    tracer_provider: trace.TracerProvider = trace.NoOpTracerProvider()
    if settings.traces_enabled:
        sdk_tracer = TracerProvider(resource=resource)
        if endpoint and settings.traces_exporter != "none":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")
            sdk_tracer.add_span_processor(BatchSpanProcessor(exporter))
        for processor in span_processors:
            sdk_tracer.add_span_processor(processor)
        tracer_provider = sdk_tracer

    meter_provider: metrics.MeterProvider = metrics.NoOpMeterProvider()
    scrape_server: WSGIServer | None = None
    if settings.metrics_enabled:
        readers: list[MetricReader] = list(metric_readers)
        if endpoint and settings.metrics_exporter != "none":
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )

            readers.append(
                PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"))
            )
        if settings.prometheus_port is not None:
            # A registry of our own, not prometheus_client's global one.
            registry = CollectorRegistry(auto_describe=True)
            readers.append(PrometheusMetricReader(registry=registry))
            scrape_server, _thread = start_http_server(
                settings.prometheus_port, settings.prometheus_host, registry=registry
            )
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)

    if set_global:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    return Telemetry(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        tracer=tracer_provider.get_tracer(INSTRUMENTATION_NAME),
        instruments=instruments_for(meter_provider) if set_global else _fresh(meter_provider),
        scrape_server=scrape_server,
    )


@contextmanager
def command_telemetry(settings: OtelSettings | None = None) -> Iterator[None]:
    """Global providers from ``OTEL_*`` for a CLI command, flushed when the block ends so
    a short-lived command exports before it exits (the SDK shuts them down at exit).

    Installed only when no SDK provider is installed yet: a process that set up its own
    providers (or ran a command before, e.g. under ``CliRunner``) keeps them. Installed
    even without an exporter, so spans record and records carry ``traceparent``.
    """
    if not isinstance(metrics.get_meter_provider(), MeterProvider):
        configure_telemetry(settings or OtelSettings())
    try:
        yield
    finally:
        for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
            if isinstance(provider, TracerProvider | MeterProvider):
                provider.force_flush()


# --------------------------------------------------------------------------- propagation


def _trace_fields(headers: Iterable[tuple[str, bytes]]) -> dict[str, str]:
    """The W3C fields in ``headers``; the newest value of a repeated name wins."""
    return {
        key: value.decode("latin-1") for key, value in headers if key in TRACE_HEADERS and value
    }


def inject_headers(headers: Headers, context: Context | None = None) -> Headers:
    """``headers`` with ``traceparent``/``tracestate`` set to ``context`` (default: current).

    Existing trace headers are removed, not appended to: a record re-produced to a retry
    or DLQ topic must carry one ``traceparent`` (aiokafka's instrumentation reads the
    first one it finds).
    """
    carrier: MutableMapping[str, str] = {}
    _W3C.inject(carrier, context=context)
    kept = tuple((k, v) for k, v in headers if k not in TRACE_HEADERS)
    return kept + tuple((k, carrier[k].encode("ascii")) for k in TRACE_HEADERS if k in carrier)


def replace_trace_headers(headers: Headers, trace_headers: Headers) -> Headers:
    """``headers`` with their trace fields replaced by ``trace_headers`` (from
    :func:`inject_headers` on no headers): one injection shared by a whole batch."""
    if any(k in TRACE_HEADERS for k, _ in headers):
        headers = tuple((k, v) for k, v in headers if k not in TRACE_HEADERS)
    return headers + trace_headers


def extract_context(headers: Iterable[tuple[str, bytes]]) -> Context:
    """The remote trace context carried in ``headers`` (an empty context if none)."""
    return _W3C.extract(_trace_fields(headers))


def span_context_of(headers: Iterable[tuple[str, bytes]]) -> SpanContext | None:
    """The producer's span context from ``headers``, for links; ``None`` if absent."""
    fields = _trace_fields(headers)
    if not fields:
        return None
    span_context = trace.get_current_span(_W3C.extract(fields)).get_span_context()
    return span_context if span_context.is_valid else None


def links_to(headers: Iterable[tuple[str, bytes]]) -> list[Link]:
    """A link to the context in ``headers`` (e.g. the original record's), or none."""
    span_context = span_context_of(headers)
    return [Link(span_context)] if span_context is not None else []


# --------------------------------------------------------------------------- spans


def error_type(exc: BaseException) -> str:
    """The ``error.type`` value: the exception's fully qualified class name."""
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def message_id(raw: bytes | None) -> str | None:
    """``messaging.message.id`` from a record's ``event-id`` header value, if it has one."""
    return raw.decode("utf-8", "replace") if raw is not None else None


def _key_attribute(key: bytes | None) -> dict[str, Any]:
    if key is None:
        return {}
    try:
        return {MESSAGING_KAFKA_MESSAGE_KEY: key.decode("utf-8")}
    except UnicodeDecodeError:  # no canonical string form: the conventions say leave it out
        return {}


class _SpanScope:
    """Make ``span`` current for a block, then end it; an error in the block sets
    ``error.type``, the ERROR status and an exception event (what ``use_span`` does).

    A class rather than nested generator context managers: it runs once per record.
    """

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._token: object = None

    def __enter__(self) -> Span:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._span
        try:
            if isinstance(exc, Exception) and span.is_recording():
                span.set_attribute(ERROR_TYPE, error_type(exc))
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            otel_context.detach(cast(Token[Context], self._token))
            span.end()


def _messaging_span(
    tracer: Tracer,
    name: str,
    kind: SpanKind,
    attributes: dict[str, Any],
    links: Sequence[Link],
    context: Context | None = None,
) -> _SpanScope:
    return _SpanScope(
        tracer.start_span(name, context=context, kind=kind, attributes=attributes, links=links)
    )


def send_span(
    tracer: Tracer,
    topic: str,
    *,
    key: bytes | None = None,
    value: bytes | None = b"",
    message_id: str | None = None,
    partition: int | None = None,
    links: Sequence[Link] = (),
) -> AbstractContextManager[Span]:
    """A ``send <topic>`` PRODUCER span; inject its context with :func:`inject_headers`
    inside the block and report where the record landed with :func:`record_sent`."""
    attributes = send_attributes(
        topic, key=key, value=value, message_id=message_id, partition=partition
    )
    return _messaging_span(tracer, f"send {topic}", SpanKind.PRODUCER, attributes, links)


def send_attributes(
    topic: str,
    *,
    key: bytes | None = None,
    value: bytes | None = b"",
    message_id: str | None = None,
    partition: int | None = None,
) -> dict[str, Any]:
    """The attributes of a ``send <topic>`` span (for a span that outlives a block)."""
    attributes: dict[str, Any] = {
        MESSAGING_SYSTEM: KAFKA,
        MESSAGING_DESTINATION_NAME: topic,
        MESSAGING_OPERATION_TYPE: "send",
        MESSAGING_OPERATION_NAME: "send",
        **_key_attribute(key),
    }
    if value is None:
        attributes[MESSAGING_KAFKA_MESSAGE_TOMBSTONE] = True
    else:
        attributes[MESSAGING_MESSAGE_BODY_SIZE] = len(value)
    if message_id is not None:
        attributes[MESSAGING_MESSAGE_ID] = message_id
    if partition is not None:
        attributes[MESSAGING_DESTINATION_PARTITION_ID] = str(partition)
    return attributes


def record_sent(span: Span, metadata: RecordMetadata) -> None:
    """Add the partition and offset the broker assigned to a ``send`` span."""
    span.set_attribute(MESSAGING_DESTINATION_PARTITION_ID, str(metadata.partition))
    span.set_attribute(MESSAGING_KAFKA_OFFSET, metadata.offset)


def process_span(
    tracer: Tracer,
    record: Record,
    *,
    group: str | None,
    message_id: str | None = None,
    links: Sequence[Link] = (),
) -> AbstractContextManager[Span]:
    """A ``process <topic>`` CONSUMER span: a child of the producer's context in the
    record's headers, with a link to it as the conventions ask.

    It runs once per record: the attributes are one dict literal and the W3C context is
    parsed only when the record carries a ``traceparent``.
    """
    attributes: dict[str, Any] = {
        MESSAGING_SYSTEM: KAFKA,
        MESSAGING_DESTINATION_NAME: record.topic,
        MESSAGING_DESTINATION_PARTITION_ID: str(record.partition),
        MESSAGING_KAFKA_OFFSET: record.offset,
        MESSAGING_OPERATION_TYPE: "process",
        MESSAGING_OPERATION_NAME: "process",
    }
    if record.key is not None:
        attributes.update(_key_attribute(record.key))
    if group is not None:
        attributes[MESSAGING_CONSUMER_GROUP_NAME] = group
    if message_id is not None:
        attributes[MESSAGING_MESSAGE_ID] = message_id
    if record.value is None:
        attributes[MESSAGING_KAFKA_MESSAGE_TOMBSTONE] = True
    else:
        attributes[MESSAGING_MESSAGE_BODY_SIZE] = len(record.value)
    parent: Context | None = None
    all_links: Sequence[Link] = links
    fields = _trace_fields(record.headers)
    if fields:  # one W3C extraction serves both the parent and the link
        parent = _W3C.extract(fields)
        producer = trace.get_current_span(parent).get_span_context()
        if producer.is_valid:
            all_links = [Link(producer), *links]
        elif not links:
            parent = None
    return _messaging_span(
        tracer, f"process {record.topic}", SpanKind.CONSUMER, attributes, all_links, parent
    )


def add_trace_context(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: add ``trace_id``/``span_id`` of the current span, if any."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict.setdefault("trace_id", format(span_context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(span_context.span_id, "016x"))
    return event_dict


# --------------------------------------------------------------------------- metrics


def metric_attributes(
    topic: str,
    *,
    operation: str,
    partition: int | None = None,
    group: str | None = None,
    error: BaseException | None = None,
) -> dict[str, str]:
    """Low-cardinality attributes for the messaging metrics (no keys, no offsets)."""
    attributes = {
        MESSAGING_SYSTEM: KAFKA,
        MESSAGING_DESTINATION_NAME: topic,
        MESSAGING_OPERATION_NAME: operation,
    }
    if partition is not None:
        attributes[MESSAGING_DESTINATION_PARTITION_ID] = str(partition)
    if group is not None:
        attributes[MESSAGING_CONSUMER_GROUP_NAME] = group
    if error is not None:
        attributes[ERROR_TYPE] = error_type(error)
    return attributes


def count_messages(
    counter: Counter,
    topics: Iterable[str],
    *,
    operation: str,
    error: BaseException | None = None,
) -> None:
    """Add one per record to ``counter``, grouped by destination (for raw batches)."""
    for topic, n in collections.Counter(topics).items():
        counter.add(n, metric_attributes(topic, operation=operation, error=error))


@dataclass
class ConsumerLag:
    """Last known lag per (group, topic, partition), reported by an observable gauge."""

    _values: dict[tuple[str, str, int], int] = field(default_factory=dict)

    def set(self, *, group: str, topic: str, partition: int, lag: int) -> None:
        self._values[(group, topic, partition)] = max(lag, 0)

    def forget(self, *, group: str, topic: str, partition: int) -> None:
        """Stop reporting a partition this process no longer owns (call on revoke)."""
        self._values.pop((group, topic, partition), None)

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        for (group, topic, partition), lag in list(self._values.items()):
            attributes = metric_attributes(
                topic, operation="poll", partition=partition, group=group
            )
            yield Observation(lag, attributes)


_by_provider: weakref.WeakKeyDictionary[metrics.MeterProvider, MessagingInstruments] = (
    weakref.WeakKeyDictionary()
)
# One lag table for every instrument set on a global provider: instruments made on the
# proxy provider (before one is set) and on the real one then report to one gauge.
_global_lag = ConsumerLag()


def _fresh(provider: metrics.MeterProvider) -> MessagingInstruments:
    return MessagingInstruments.create(provider.get_meter(INSTRUMENTATION_NAME))


def instruments_for(provider: metrics.MeterProvider) -> MessagingInstruments:
    """The instruments of ``provider``, made once (a meter keeps the first instrument of
    a name, so a second set would lose its lag callback)."""
    found = _by_provider.get(provider)
    if found is None:
        meter = provider.get_meter(INSTRUMENTATION_NAME)
        found = _by_provider[provider] = MessagingInstruments.create(meter, lag=_global_lag)
    return found


def global_instruments() -> MessagingInstruments:
    """Instruments on the global meter provider: what clients record to when they are not
    given ``instruments=``. Before a provider is set they forward to the one set later."""
    return instruments_for(metrics.get_meter_provider())


@dataclass(frozen=True)
class MessagingInstruments:
    """The metric instruments producers, consumers and the retry router record to."""

    sent: Counter
    consumed: Counter
    process_duration: Histogram
    retried: Counter
    dead_lettered: Counter
    lag: ConsumerLag

    @classmethod
    def create(cls, meter: Meter, *, lag: ConsumerLag | None = None) -> MessagingInstruments:
        """Names, units and attributes of the OpenTelemetry messaging conventions
        (``opentelemetry-semantic-conventions``), plus our retry/DLQ/lag instruments."""
        lag = lag or ConsumerLag()
        meter.create_observable_gauge(
            "streaming.consumer.lag",
            callbacks=[lag.observe],
            unit="{message}",
            description="Records between a partition's end offset and the group's position.",
        )
        return cls(
            sent=semconv_metrics.create_messaging_client_sent_messages(meter),
            consumed=semconv_metrics.create_messaging_client_consumed_messages(meter),
            process_duration=meter.create_histogram(  # the semconv helper sets no buckets
                semconv_metrics.MESSAGING_PROCESS_DURATION,
                unit="s",
                description="Duration of processing one message by its handler.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
            ),
            retried=meter.create_counter(
                "streaming.retry.messages",
                unit="{message}",
                description="Messages routed to a retry topic after a handler failure.",
            ),
            dead_lettered=meter.create_counter(
                "streaming.dlq.messages",
                unit="{message}",
                description="Messages routed to a dead-letter topic.",
            ),
            lag=lag,
        )


__all__ = [
    "DURATION_BUCKETS_S",
    "ConsumerLag",
    "MessagingInstruments",
    "Telemetry",
    "add_trace_context",
    "command_telemetry",
    "configure_telemetry",
    "count_messages",
    "error_type",
    "extract_context",
    "global_instruments",
    "inject_headers",
    "instruments_for",
    "links_to",
    "message_id",
    "metric_attributes",
    "process_span",
    "record_sent",
    "replace_trace_headers",
    "send_attributes",
    "send_span",
    "span_context_of",
]
