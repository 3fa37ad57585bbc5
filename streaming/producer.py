"""The typed, idempotent producer: events in, Confluent-framed Avro records out.

:class:`EventProducer` serializes an :class:`~streaming.events.Event` through the serde,
keys it by the event's partition key, stamps the DESIGN.md headers (``event-id``,
``event-type``, ``correlation-id``, ``traceparent``/``tracestate``, ``content-type``,
``produced-at``) and sends it through a :class:`~streaming.transport.base.ProducerTransport`
(idempotent, ``acks=all``). An optional transactional mode serves consume-transform-
produce; :class:`TransactionalProducers` keeps one stable transactional id per input
partition, because aiokafka lacks KIP-447 fencing by consumer-group metadata.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Protocol, Self

import structlog
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer

from streaming.context import current_correlation_id
from streaming.errors import PartialSendError, StreamingError, TransactionError, TransportError
from streaming.events import Event
from streaming.security.rbac import Action
from streaming.serde.avro import AvroSerializer
from streaming.serde.client import SchemaRegistry
from streaming.serde.context import SerializationContext
from streaming.telemetry import (
    ERROR_TYPE,
    INSTRUMENTATION_NAME,
    KAFKA,
    MESSAGING_DESTINATION_NAME,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_SYSTEM,
    MessagingInstruments,
    error_type,
    global_instruments,
    inject_headers,
    metric_attributes,
    record_sent,
    replace_trace_headers,
    send_span,
)
from streaming.transport.base import (
    Headers,
    OutgoingRecord,
    ProducerTransport,
    RecordMetadata,
    TopicPartition,
    TransportFactory,
)

log = structlog.get_logger(__name__)

CONTENT_TYPE_AVRO = "application/vnd.kafka.avro.v1"
H_EVENT_ID = "event-id"
H_EVENT_TYPE = "event-type"
H_CORRELATION_ID = "correlation-id"
H_CONTENT_TYPE = "content-type"
H_PRODUCED_AT = "produced-at"
MESSAGING_BATCH_MESSAGE_COUNT = "messaging.batch.message_count"
EVENT_HEADERS = (H_EVENT_ID, H_EVENT_TYPE, H_CORRELATION_ID, H_CONTENT_TYPE, H_PRODUCED_AT)


class TopicGuard(Protocol):
    """What the producer asks before sending (e.g. ``TopicAuthorizer.bind(principal)``)."""

    async def check(self, topic: str, action: Action) -> None: ...


class ProducerNotStartedError(TransportError):
    """The producer was used outside ``async with`` / before ``start()``."""


def event_headers(event: Event, *, now_ms: int, extra: Headers = ()) -> Headers:
    """The DESIGN.md headers for ``event`` (without trace context), then ``extra``.

    The correlation id is the event's own, else the current execution context's, else
    the event id (a root event correlates with itself).
    """
    metadata = event.metadata
    event_id = str(metadata.event_id).encode()
    correlation = metadata.correlation_id or current_correlation_id()
    own: Headers = (
        (H_EVENT_ID, event_id),
        (H_EVENT_TYPE, _type_header(type(event))),
        (H_CORRELATION_ID, correlation.encode() if correlation else event_id),
        _CONTENT_TYPE_HEADER,
        (H_PRODUCED_AT, b"%d" % now_ms),
    )
    if not extra:
        return own
    names = {k for k, _ in extra}
    return tuple(h for h in own if h[0] not in names) + tuple(extra)


_CONTENT_TYPE_HEADER = (H_CONTENT_TYPE, CONTENT_TYPE_AVRO.encode())
_TYPE_HEADERS: dict[type[Event], bytes] = {}


def _type_header(cls: type[Event]) -> bytes:
    """``event-type`` bytes, computed once per class (this runs once per record)."""
    value = _TYPE_HEADERS.get(cls)
    if value is None:
        value = _TYPE_HEADERS[cls] = cls.type_name().encode()
    return value


class EventProducer:
    """Send typed events; use as ``async with EventProducer(transport, registry) as p``.

    Exiting the block flushes and stops the transport. With ``transactional_id`` every
    send must happen inside :meth:`transaction`.
    """

    def __init__(
        self,
        transport: TransportFactory,
        registry: SchemaRegistry,
        *,
        serializer: AvroSerializer | None = None,
        tracer: Tracer | None = None,
        instruments: MessagingInstruments | None = None,
        guard: TopicGuard | None = None,
        transactional_id: str | None = None,
        linger_ms: int = 5,
        compression: str | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self._transport = transport.producer(
            transactional_id=transactional_id, linger_ms=linger_ms, compression=compression
        )
        self._serializer = serializer or AvroSerializer(registry)
        self._tracer = tracer or trace.get_tracer(INSTRUMENTATION_NAME)
        self._instruments = instruments or global_instruments()
        self._guard = guard
        self._allowed: set[str] = set()
        self.transactional_id = transactional_id
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._started = False
        self._in_transaction = False

    @property
    def transport(self) -> ProducerTransport:
        return self._transport

    async def start(self) -> None:
        if not self._started:
            await self._transport.start()
            self._started = True

    async def stop(self) -> None:
        """Flush what is buffered, then stop (idempotent)."""
        if not self._started:
            return
        self._started = False
        try:
            await self._transport.flush()
        finally:
            await self._transport.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _require_started(self) -> None:
        if not self._started:
            raise ProducerNotStartedError(
                "EventProducer is not started; use 'async with EventProducer(...)' or start()"
            )

    async def _authorize(self, topics: Iterable[str]) -> None:
        if self._guard is None:
            return
        for topic in set(topics) - self._allowed:
            await self._guard.check(topic, Action.WRITE)
            self._allowed.add(topic)

    async def build(
        self,
        topic: str,
        event: Event,
        *,
        key: bytes | None = None,
        headers: Headers = (),
        partition: int | None = None,
    ) -> OutgoingRecord:
        """The record :meth:`send` would write (serialized, keyed, headed; no trace yet)."""
        return await self._record(topic, event, key, headers, partition, ())

    async def _record(
        self,
        topic: str,
        event: Event,
        key: bytes | None,
        headers: Headers,
        partition: int | None,
        trace_headers: Headers,
    ) -> OutgoingRecord:
        if key is None:
            text = event.partition_key()
            key = text.encode() if text is not None else None
        all_headers = event_headers(event, now_ms=self._clock_ms(), extra=headers)
        ctx = SerializationContext(topic, headers=all_headers)
        value = await self._serializer.serialize(event, ctx)
        if trace_headers:
            all_headers = replace_trace_headers(all_headers, trace_headers)
        return OutgoingRecord(topic, value, key, all_headers, partition)

    async def send(
        self,
        topic: str,
        event: Event,
        *,
        key: bytes | None = None,
        headers: Headers = (),
        partition: int | None = None,
    ) -> RecordMetadata:
        """Serialize and send ``event``; returns where the broker stored it.

        ``key`` defaults to the event's partition key. Raises ``PermissionDenied`` (before
        anything is sent) when a guard refuses the topic.
        """
        self._require_started()
        await self._authorize([topic])
        record = await self.build(topic, event, key=key, headers=headers, partition=partition)
        with send_span(
            self._tracer,
            topic,
            key=record.key,
            value=record.value,
            message_id=str(event.metadata.event_id),
            partition=partition,
        ) as span:
            traced = _with_trace(record)
            try:
                meta = await self._transport.send(traced)
            except StreamingError as exc:
                self._count(topic, exc)
                raise
            record_sent(span, meta)
        self._count(topic)
        return meta

    async def send_many(
        self, topic: str, events: Sequence[Event], *, headers: Headers = ()
    ) -> list[RecordMetadata]:
        """Send a batch pipelined under one ``send <topic>`` span; per-key order is kept."""
        self._require_started()
        await self._authorize([topic])
        attributes: dict[str, str | int] = {
            MESSAGING_SYSTEM: KAFKA,
            MESSAGING_DESTINATION_NAME: topic,
            MESSAGING_OPERATION_TYPE: "send",
            MESSAGING_OPERATION_NAME: "send",
            MESSAGING_BATCH_MESSAGE_COUNT: len(events),
        }
        # One span for the batch (the semantic conventions' batch send); every record
        # carries its context.
        with self._tracer.start_as_current_span(
            f"send {topic}", kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            trace_headers = inject_headers(())  # the batch span's context, for every record
            records = [
                await self._record(topic, e, None, headers, None, trace_headers) for e in events
            ]
            try:
                metas = await self._transport.send_many(records)
            except StreamingError as exc:
                span.set_attribute(ERROR_TYPE, error_type(exc))
                acked = (
                    sum(m is not None for m in exc.results)
                    if isinstance(exc, PartialSendError)
                    else 0
                )
                self._count(topic, None, acked)
                self._count(topic, exc, len(events) - acked)
                raise
        self._count(topic, None, len(events))
        return metas

    async def flush(self) -> None:
        self._require_started()
        await self._transport.flush()

    # -- transactions
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Self]:
        """Begin; commit when the block ends, abort if it raises."""
        self._require_started()
        if self.transactional_id is None:
            raise TransactionError(
                "transaction(): create the EventProducer with transactional_id=... first"
            )
        await self._transport.begin_transaction()
        self._in_transaction = True
        try:
            yield self
        except BaseException:
            self._in_transaction = False
            await self._transport.abort_transaction()
            raise
        self._in_transaction = False
        await self._transport.commit_transaction()

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group_id: str
    ) -> None:
        """Commit consumer ``offsets`` (next offsets) atomically with this transaction."""
        if not self._in_transaction:
            raise TransactionError("send_offsets_to_transaction() needs an open transaction()")
        await self._transport.send_offsets_to_transaction(offsets, group_id)

    def _count(self, topic: str, error: BaseException | None = None, n: int = 1) -> None:
        if n:
            self._instruments.sent.add(n, metric_attributes(topic, operation="send", error=error))


def _with_trace(record: OutgoingRecord) -> OutgoingRecord:
    return OutgoingRecord(
        record.topic,
        record.value,
        record.key,
        inject_headers(record.headers),
        record.partition,
        record.timestamp_ms,
    )


def transactional_id_for(base: str, tp: TopicPartition) -> str:
    """The stable transactional id of the producer serving input partition ``tp``."""
    return f"{base}.{tp.topic}.{tp.partition}"


class TransactionalProducers:
    """One transactional :class:`EventProducer` per input partition (consume-transform-produce).

    A partition's producer keeps its transactional id across restarts and rebalances, so
    a zombie that still owns the partition is fenced when the new owner starts.
    Call :meth:`release` from the consumer's revoke callback and :meth:`close` at the end.
    """

    def __init__(self, make: Callable[[str], EventProducer], base_id: str) -> None:
        self._make = make
        self._base_id = base_id
        self._producers: dict[TopicPartition, EventProducer] = {}

    async def for_partition(self, tp: TopicPartition) -> EventProducer:
        producer = self._producers.get(tp)
        if producer is None:
            producer = self._make(transactional_id_for(self._base_id, tp))
            await producer.start()
            self._producers[tp] = producer
        return producer

    async def release(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            producer = self._producers.pop(tp, None)
            if producer is not None:
                await producer.stop()

    async def close(self) -> None:
        await self.release(list(self._producers))


__all__ = [
    "CONTENT_TYPE_AVRO",
    "EVENT_HEADERS",
    "EventProducer",
    "ProducerNotStartedError",
    "TopicGuard",
    "TransactionalProducers",
    "event_headers",
    "transactional_id_for",
]
