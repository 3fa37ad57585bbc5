"""The publish chain: what happens to built records between a producer and its transport.

A send becomes a :class:`Publish` and runs through publish middlewares of the shape
``async (publish, call_next) -> metadata`` before :func:`transport_endpoint` hands it to
the :class:`~streaming.transport.base.ProducerTransport` - the producer-side twin of the
consumer's chain (like faststream's ``publish_scope``). Tracing is such a middleware,
:class:`TracePublish`, used by :class:`~streaming.clients.producer.EventProducer` and the
retry router alike; users add their own with ``EventProducer(middlewares=[...])``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

from opentelemetry import trace
from opentelemetry.trace import (
    Link,
    NoOpTracer,
    ProxyTracer,
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
)

from streaming.errors import StreamingError
from streaming.telemetry import (
    ERROR_TYPE,
    KAFKA,
    MESSAGING_DESTINATION_NAME,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_SYSTEM,
    error_type,
    inject_headers,
    record_sent,
    replace_trace_headers,
    send_attributes,
    send_span,
)
from streaming.transport.base import (
    Headers,
    OutgoingRecord,
    ProducerTransport,
    RecordMetadata,
    Settled,
)

MESSAGING_BATCH_MESSAGE_COUNT = "messaging.batch.message_count"


Delivery = asyncio.Future[RecordMetadata]


@dataclass(frozen=True, slots=True)
class Publish:
    """Records on their way to ``topic``: one (a send, with its ``message_id`` and
    ``links`` for the span) or a batch (``batch=True``: one span, every record carries it).

    ``deliveries`` set means enqueue only (:meth:`EventProducer.enqueue`): the endpoint
    buffers the record, appends its acknowledgement's future there and returns no
    metadata. A middleware that builds a new ``Publish`` keeps it with
    ``dataclasses.replace``.
    """

    topic: str
    records: Sequence[OutgoingRecord]
    batch: bool = False
    message_id: str | None = None
    links: Sequence[Link] = ()
    deliveries: list[Delivery] | None = None


PublishNext = Callable[[Publish], Awaitable[list[RecordMetadata]]]
EnqueueNext = Callable[[OutgoingRecord], Awaitable[Delivery]]
PublishMiddleware = Callable[[Publish, PublishNext], Awaitable[list[RecordMetadata]]]


def transport_endpoint(
    transport: ProducerTransport, *, settled: Settled | None = None
) -> PublishNext:
    """The end of a publish chain: send through ``transport`` (a batch pipelined);
    ``settled`` hears of enqueued records' fates (see ``ProducerTransport.enqueue``)."""

    async def send(publish: Publish) -> list[RecordMetadata]:
        if publish.deliveries is not None:
            for record in publish.records:
                publish.deliveries.append(await transport.enqueue(record, settled=settled))
            return []
        if publish.batch:
            return await transport.send_many(publish.records)
        return [await transport.send(publish.records[0])]

    return send


class TracePublish:
    """A ``send <topic>`` PRODUCER span around the send, its context in every record's
    ``traceparent`` (replaced, never appended), the broker's partition/offset on it."""

    __slots__ = ("_tracer",)

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    async def __call__(self, publish: Publish, call_next: PublishNext) -> list[RecordMetadata]:
        if publish.batch:
            return await self._batch(publish, call_next)
        if publish.deliveries is not None:
            return await self._enqueue(publish, call_next)
        record = publish.records[0]
        with send_span(
            self._tracer,
            publish.topic,
            key=record.key,
            value=record.value,
            message_id=publish.message_id,
            partition=record.partition,
            links=publish.links,
        ) as span:
            traced = _with_headers(record, inject_headers(record.headers))
            metas = await call_next(_replace_records(publish, (traced,)))
            record_sent(span, metas[0])
        return metas

    @property
    def active(self) -> bool:
        """False while the tracer can only make no-op spans (checked per record: a
        provider may be set after the producer was made)."""
        return _can_trace(self._tracer)

    async def enqueue(
        self, record: OutgoingRecord, message_id: str | None, enqueue: EnqueueNext
    ) -> Delivery:
        """The span of one record handed to ``enqueue`` (the transport's), without a
        :class:`Publish`: :meth:`EventProducer.enqueue`'s path when it has no middlewares.

        The span ends when the broker acknowledges (or refuses) the record, as Kafka's
        own instrumentation ends it in the send callback: it then carries the offset.
        """
        span = self._enqueue_span(record.topic, record, message_id, ())
        if span is None:
            return await enqueue(record)  # tracing is off: no context to carry
        # Only the headers need the span's context (no middleware runs inside): inject
        # it directly instead of making the span current around the call.
        context = trace.set_span_in_context(span)
        traced = _with_headers(record, inject_headers(record.headers, context))
        try:
            delivery = await enqueue(traced)
        except BaseException as exc:
            _end_failed(span, exc)
            raise
        delivery.add_done_callback(partial(_end_send_span, span))
        return delivery

    def _enqueue_span(
        self, topic: str, record: OutgoingRecord, message_id: str | None, links: Sequence[Link]
    ) -> Span | None:
        """A started ``send`` span, or ``None`` when it could carry no context (tracing
        is off; a no-op tracer costs no attribute building at all)."""
        if not _can_trace(self._tracer):
            return None
        span = self._tracer.start_span(
            f"send {topic}",
            kind=SpanKind.PRODUCER,
            links=links,
            attributes=send_attributes(
                topic,
                key=record.key,
                value=record.value,
                message_id=message_id,
                partition=record.partition,
            ),
        )
        if not span.is_recording() and not span.get_span_context().is_valid:
            return None
        return span

    async def _enqueue(self, publish: Publish, call_next: PublishNext) -> list[RecordMetadata]:
        """:meth:`enqueue` inside a publish chain (the endpoint appends the delivery)."""
        record, deliveries = publish.records[0], publish.deliveries
        assert deliveries is not None
        span = self._enqueue_span(publish.topic, record, publish.message_id, publish.links)
        if span is None:
            return await call_next(publish)  # tracing is off: no context to carry
        first = len(deliveries)
        with trace.use_span(span, end_on_exit=False) as current:
            traced = _with_headers(record, inject_headers(record.headers))
            try:
                metas = await call_next(_replace_records(publish, (traced,)))
            except BaseException:
                current.end()  # use_span recorded the error
                raise
        if len(deliveries) > first:
            deliveries[first].add_done_callback(partial(_end_send_span, span))
        else:  # a middleware answered without the transport
            span.end()
        return metas

    async def _batch(self, publish: Publish, call_next: PublishNext) -> list[RecordMetadata]:
        """One span for the batch (the semantic conventions' batch send)."""
        attributes: dict[str, str | int] = {
            MESSAGING_SYSTEM: KAFKA,
            MESSAGING_DESTINATION_NAME: publish.topic,
            MESSAGING_OPERATION_TYPE: "send",
            MESSAGING_OPERATION_NAME: "send",
            MESSAGING_BATCH_MESSAGE_COUNT: len(publish.records),
        }
        with self._tracer.start_as_current_span(
            f"send {publish.topic}", kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            trace_headers = inject_headers(())  # one injection shared by every record
            traced = [
                _with_headers(r, replace_trace_headers(r.headers, trace_headers))
                for r in publish.records
            ]
            try:
                return await call_next(_replace_records(publish, traced))
            except StreamingError as exc:
                span.set_attribute(ERROR_TYPE, error_type(exc))
                raise


def _can_trace(tracer: Tracer) -> bool:
    """False for a tracer that only makes no-op spans: the API's default before any
    provider is set (a proxy that delegates to the no-op tracer until one is)."""
    if isinstance(tracer, ProxyTracer):
        # What it delegates to now (it follows the provider). A private attribute of the
        # API's proxy: should a release drop it, trace (correct, only slower).
        delegate = getattr(tracer, "_tracer", None)
        return delegate is None or not isinstance(delegate, NoOpTracer)
    return not isinstance(tracer, NoOpTracer)


def _end_send_span(span: Span, delivery: Delivery) -> None:
    """End an enqueued record's span with where it landed, or why it did not."""
    if delivery.cancelled():
        span.end()
        return
    exc = delivery.exception()
    if exc is None:
        record_sent(span, delivery.result())
        span.end()
    else:
        _end_failed(span, exc)


def _end_failed(span: Span, exc: BaseException) -> None:
    """End ``span`` as failed by ``exc`` (``use_span`` leaves a cancellation unrecorded)."""
    if isinstance(exc, Exception):
        span.set_attribute(ERROR_TYPE, error_type(exc))
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.end()


def _replace_records(publish: Publish, records: Sequence[OutgoingRecord]) -> Publish:
    return Publish(
        publish.topic,
        records,
        publish.batch,
        publish.message_id,
        publish.links,
        publish.deliveries,
    )


def _with_headers(record: OutgoingRecord, headers: Headers) -> OutgoingRecord:
    return OutgoingRecord(
        record.topic, record.value, record.key, headers, record.partition, record.timestamp_ms
    )


__all__ = [
    "MESSAGING_BATCH_MESSAGE_COUNT",
    "Delivery",
    "EnqueueNext",
    "Publish",
    "PublishMiddleware",
    "PublishNext",
    "TracePublish",
    "transport_endpoint",
]
