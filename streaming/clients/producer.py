"""The typed, idempotent producer: events in, Confluent-framed Avro records out.

:class:`EventProducer` serializes an :class:`~streaming.events.Event` through the serde,
keys it by the event's partition key, stamps the DESIGN.md headers (``event-id``,
``event-type``, ``correlation-id``, ``traceparent``/``tracestate``, ``content-type``,
``produced-at``) and sends it through a :class:`~streaming.transport.base.ProducerTransport`
(idempotent, ``acks=all``) through a publish middleware chain
(:mod:`streaming.clients.publish`; tracing is its first step). An optional transactional mode serves consume-transform-
produce; :class:`TransactionalProducers` keeps one stable transactional id per input
partition, because aiokafka lacks KIP-447 fencing by consumer-group metadata.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Protocol, Self

import structlog
from opentelemetry import trace
from opentelemetry.trace import Tracer

from streaming.clients.chain import chain
from streaming.clients.publish import (
    Delivery,
    EnqueueNext,
    Publish,
    PublishMiddleware,
    PublishNext,
    TracePublish,
    transport_endpoint,
)
from streaming.context import current_correlation_id
from streaming.core.clock import now_ms
from streaming.core.headers import (
    CONTENT_TYPE_AVRO,
    EVENT_HEADERS,
    H_CONTENT_TYPE,
    H_CORRELATION_ID,
    H_EVENT_ID,
    H_EVENT_TYPE,
    H_PRODUCED_AT,
)
from streaming.core.lifecycle import AsyncService
from streaming.errors import PartialSendError, StreamingError, TransactionError, TransportError
from streaming.events import Event
from streaming.privacy.plan import plan_for
from streaming.privacy.protect import FieldProtector
from streaming.security.rbac import Action
from streaming.serde.avro import AvroSerializer
from streaming.serde.client import SchemaRegistry
from streaming.serde.context import SerializationContext
from streaming.telemetry import (
    INSTRUMENTATION_NAME,
    MessagingInstruments,
    global_instruments,
    metric_attributes,
)
from streaming.transport.base import (
    Headers,
    OutgoingRecord,
    ProducerTransport,
    RecordMetadata,
    Settled,
    TopicPartition,
    TransportFactory,
)

log = structlog.get_logger(__name__)

MESSAGING_BATCH_MESSAGE_COUNT = "messaging.batch.message_count"


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
    return _event_headers(event, str(event.metadata.event_id).encode(), now_ms, extra)


def _event_headers(event: Event, event_id: bytes, now_ms: int, extra: Headers) -> Headers:
    correlation = event.metadata.correlation_id or current_correlation_id()
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


class EventProducer(AsyncService):
    """Send typed events; use as ``async with EventProducer(transport, registry) as p``.

    Exiting the block flushes and stops the transport. With ``transactional_id`` every
    send must happen inside :meth:`transaction`. ``middlewares`` (``async (publish,
    call_next)``) run inside the ``send`` span, in order, before the transport.
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
        middlewares: Sequence[PublishMiddleware] = (),
        privacy: FieldProtector | None = None,
    ) -> None:
        self._transport = transport.producer(
            transactional_id=transactional_id, linger_ms=linger_ms, compression=compression
        )
        self._serializer = serializer or AvroSerializer(registry)
        # Marked (pii) fields are encrypted before serialization: default from SECURITY_PII_KEK.
        self._privacy = privacy or FieldProtector.from_settings(transport)
        self._trace = TracePublish(tracer or trace.get_tracer(INSTRUMENTATION_NAME))
        # One bound method: the transport tells a run of records with the same listener
        # (``is``) in one call.
        self._settled: Settled = self._count_settled
        self._to_transport: EnqueueNext = self._enqueue_record
        self._publish: PublishNext = chain(
            [self._trace, *middlewares],
            transport_endpoint(self._transport, settled=self._settled),
        )
        self._direct = not middlewares  # enqueue() may skip the chain (same steps)
        self._instruments = instruments or global_instruments()
        self._guard = guard
        self._allowed: set[str] = set()
        self.transactional_id = transactional_id
        self._clock_ms = clock_ms or now_ms
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
            await self._privacy.close()

    def _require_started(self) -> None:
        if not self._started:
            raise ProducerNotStartedError(
                "EventProducer is not started; use 'async with EventProducer(...)' or start()"
            )

    async def _authorize(self, topics: Iterable[str]) -> None:
        if self._guard is None:
            self._allowed.update(topics)  # nothing to ask: remember them as allowed
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
        return (await self._build(topic, event, key, headers, partition))[0]

    async def _build(
        self,
        topic: str,
        event: Event,
        key: bytes | None,
        headers: Headers,
        partition: int | None,
    ) -> tuple[OutgoingRecord, str]:
        """:meth:`build`, and the event id as text (the span's message id)."""
        if key is None:
            text = event.partition_key()
            key = text.encode() if text is not None else None
        if plan_for(type(event)) is not None:  # marked fields: encrypt before serializing
            event = await self._privacy.protect(event)
        event_id = str(event.metadata.event_id)
        all_headers = _event_headers(event, event_id.encode(), self._clock_ms(), headers)
        ctx = SerializationContext(topic, headers=all_headers)
        value = await self._serializer.serialize(event, ctx)
        return OutgoingRecord(topic, value, key, all_headers, partition), event_id

    async def send(
        self,
        topic: str,
        event: Event,
        *,
        key: bytes | None = None,
        headers: Headers = (),
        partition: int | None = None,
    ) -> RecordMetadata:
        """Serialize and send ``event``, wait for the acknowledgement; returns where the
        broker stored it (a round trip per call: loops of events use :meth:`enqueue`).

        ``key`` defaults to the event's partition key. Raises ``PermissionDenied`` (before
        anything is sent) when a guard refuses the topic.
        """
        self._require_started()
        await self._authorize([topic])
        record, message_id = await self._build(topic, event, key, headers, partition)
        return (await self._counted(Publish(topic, (record,), message_id=message_id)))[0]

    async def enqueue(
        self,
        topic: str,
        event: Event,
        *,
        key: bytes | None = None,
        headers: Headers = (),
        partition: int | None = None,
    ) -> Delivery:
        """Serialize ``event`` and hand it to the send buffer; returns the future of its
        acknowledgement (aiokafka's ``send()``: ``meta = await (await p.enqueue(...))``).

        Waits only while the buffer is full, so a loop of ``enqueue`` runs at the
        batching rate rather than one round trip per event; a partition's records are
        written in enqueue order (idempotence keeps it across retries). Errors known
        before buffering (a refused topic, a serialization error) raise here; a
        refused write fails the future. :meth:`flush` (or leaving ``async with``)
        waits for everything enqueued. The ``send`` span ends at the acknowledgement;
        the sent-messages metric counts each batch once its fate is known.
        """
        self._require_started()
        if topic not in self._allowed:
            await self._authorize([topic])
        record, message_id = await self._build(topic, event, key, headers, partition)
        try:
            if self._direct:  # the chain's steps without a Publish per record
                if not self._trace.active:  # tracing is off: nothing to wrap
                    return await self._transport.enqueue(record, settled=self._settled)
                return await self._trace.enqueue(record, message_id, self._to_transport)
            deliveries: list[Delivery] = []
            publish = Publish(topic, (record,), message_id=message_id, deliveries=deliveries)
            metas = await self._publish(publish)
        except StreamingError as exc:
            self._count(topic, exc)
            raise
        if deliveries:
            return deliveries[0]
        # A middleware answered itself (as it may for send()): already delivered.
        self._count(topic)
        delivery: Delivery = asyncio.get_running_loop().create_future()
        delivery.set_result(metas[0])
        return delivery

    def _enqueue_record(self, record: OutgoingRecord) -> Awaitable[Delivery]:
        return self._transport.enqueue(record, settled=self._settled)

    def _count_settled(self, topic: str, count: int, error: BaseException | None) -> None:
        """Count a batch of enqueued records once their fate is known."""
        self._count(topic, error, count)

    async def send_many(
        self, topic: str, events: Sequence[Event], *, headers: Headers = ()
    ) -> list[RecordMetadata]:
        """Send a batch pipelined under one ``send <topic>`` span; per-key order is kept."""
        self._require_started()
        await self._authorize([topic])
        records = [await self.build(topic, e, headers=headers) for e in events]
        return await self._counted(Publish(topic, records, batch=True))

    async def _counted(self, publish: Publish) -> list[RecordMetadata]:
        """Run the publish chain, counting sent and failed records (a partial batch
        failure counts the acknowledged ones as sent)."""
        topic, n = publish.topic, len(publish.records)
        try:
            metas = await self._publish(publish)
        except StreamingError as exc:
            acked = (
                sum(m is not None for m in exc.results) if isinstance(exc, PartialSendError) else 0
            )
            self._count(topic, None, acked)
            self._count(topic, exc, n - acked)
            raise
        self._count(topic, None, n)
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
