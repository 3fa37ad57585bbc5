"""The seed's ``EventBus``: publish typed events, subscribe handlers by event type.

A thin facade over :class:`~streaming.clients.producer.EventProducer` and
:class:`~streaming.clients.consumer.EventConsumer`, so a bus gets the same retry topics, DLQ,
tracing and commit policy. :class:`KafkaEventBus` runs on a real cluster;
:class:`InMemoryEventBus` runs the very same code on the in-memory transport and
registry, for tests and single-process demos. Each event type has its own topic
(``events.<EventType>`` unless ``topic_for`` says otherwise).

The seed's promises, and where they are kept:

- a handler takes ``(event)`` or ``(event, context)``; either way it runs inside an
  :class:`~streaming.context.ExecutionContext` carrying the publisher's correlation id
  (read from the record's ``correlation-id`` header);
- automatic retry with growing, jittered delays: the consumer's retry topics
  (:class:`~streaming.clients.retry.RetryPolicy`), never a sleep in the loop;
- a dead-letter queue you can list: :meth:`TransportEventBus.dead_letters` reads the
  bus's DLQ topics (``<topic>.<group>.dlq``) into typed :class:`DeadLetter` entries;
- replay for recovery: :meth:`TransportEventBus.replay` moves dead letters back to their
  topic once each (the DLQ redrive, ledger and parking included), or with ``since=``
  rewinds the bus's group to a point in time and delivers everything from there again;
- ``health_check()`` asks the broker (bounded by ``health_timeout_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import structlog
from opentelemetry.trace import Tracer

from streaming.clients.consumer import CallNext, ConsumerError, EventConsumer, Message
from streaming.clients.dead_letters import DeadLetter, dead_letter_of, last_header
from streaming.clients.producer import EventProducer
from streaming.clients.reader import read_topic
from streaming.clients.retry import RetryPolicy
from streaming.clients.topics import TopicDefaults, ensure_topics, plan_topics
from streaming.config import KafkaSettings, Settings
from streaming.context import ExecutionContext, current_execution_context, execution_context
from streaming.core.headers import H_CORRELATION_ID
from streaming.core.lifecycle import AsyncService
from streaming.core.topics import dlq_topic
from streaming.errors import StreamingError
from streaming.events import EVENT_TYPES, Event, EventDeserializer, EventTypes
from streaming.serde.client import SchemaRegistry
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.telemetry import MessagingInstruments
from streaming.transport.base import IsolationLevel, Record, RecordMetadata, TransportFactory
from streaming.transport.memory import InMemoryTransport

log = structlog.get_logger(__name__)

EventHandler = Callable[..., Awaitable[None]]
"""``async def handler(event)`` or ``async def handler(event, context: ExecutionContext)``."""


class EventBusHealth(enum.StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True, slots=True)
class EventBusMetrics:
    events_published: int
    events_processed: int
    events_failed: int
    events_retried: int
    events_dead_lettered: int
    average_processing_time_ms: float


def _takes_context(handler: EventHandler) -> bool:
    """True when ``handler`` accepts a second positional argument (the context)."""
    try:
        params = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):  # builtins and C callables: assume the seed's form
        return False
    positional = [
        p
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return len(positional) >= 2 or any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)


async def bind_record_context(message: Message, call_next: CallNext) -> None:
    """Consumer middleware: run the handler inside the publisher's correlation id."""
    event = message.event
    operation = f"handle {type(event).type_name() if event is not None else message.record.topic}"
    correlation = last_header(message.record, H_CORRELATION_ID)
    ctx = ExecutionContext(operation=operation, source="event")
    if correlation:
        ctx = ExecutionContext(operation=operation, correlation_id=correlation, source="event")
    with execution_context(ctx):
        await call_next(message)


@runtime_checkable
class EventBus(Protocol):
    """What services depend on; pick an implementation at the edge."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def publish(
        self, event: Event, *, context: ExecutionContext | None = None
    ) -> RecordMetadata: ...
    async def subscribe(self, event_type: str | type[Event], handler: EventHandler) -> None: ...
    async def health_check(self) -> EventBusHealth: ...
    def get_metrics(self) -> EventBusMetrics: ...
    async def dead_letters(
        self, event_type: str | type[Event] | None = None
    ) -> list[DeadLetter]: ...
    async def replay(
        self, event_type: str | type[Event] | None = None, *, since: datetime | None = None
    ) -> int: ...


def default_topic_for(event_type: type[Event]) -> str:
    return f"events.{event_type.type_name()}"


class TransportEventBus(AsyncService):
    """An :class:`EventBus` over any transport factory and schema registry."""

    def __init__(
        self,
        transport: TransportFactory,
        registry: SchemaRegistry,
        *,
        group_id: str = "tradesense-event-bus",
        topic_for: Callable[[type[Event]], str] = default_topic_for,
        retry_policy: RetryPolicy | None = None,
        event_types: EventTypes = EVENT_TYPES,
        topic_defaults: TopicDefaults | None = None,
        create_topics: bool = True,
        tracer: Tracer | None = None,
        instruments: MessagingInstruments | None = None,
        poll_timeout_ms: int = 200,
        isolation_level: IsolationLevel = "read_committed",
        health_timeout_s: float = 5.0,
    ) -> None:
        self.transport = transport
        self.registry = registry
        self.group_id = group_id
        self._topic_for = topic_for
        self._policy = retry_policy or RetryPolicy()
        self._types = event_types
        self._defaults = topic_defaults or TopicDefaults()
        self._create_topics = create_topics
        self._tracer = tracer
        self._instruments = instruments
        self._poll_timeout_ms = poll_timeout_ms
        self._isolation_level: IsolationLevel = isolation_level
        self.health_timeout_s = health_timeout_s
        self._producer = EventProducer(transport, registry, tracer=tracer, instruments=instruments)
        self._subscribers: dict[type[Event], list[tuple[EventHandler, bool]]] = {}
        self._ensured: set[str] = set()
        self._consumer: EventConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._published = 0
        self._lock = asyncio.Lock()
        self._retired = {"consumed": 0, "handled": 0, "failed": 0, "retried": 0, "dlq": 0}
        self._retired_s = 0.0

    async def start(self) -> None:
        if self._started:
            return
        await self._producer.start()
        self._started = True
        await self._restart_consumer()

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        await self._stop_consumer()
        await self._producer.stop()

    def _resolve(self, event_type: str | type[Event]) -> type[Event]:
        if isinstance(event_type, str):
            found = self._types.by_event_type(event_type) or self._types.get(event_type)
            if found is None:
                raise ConsumerError(
                    f"unknown event type {event_type!r}; known: {sorted(self._types)}"
                )
            return found
        return event_type

    def topic_of(self, event_type: str | type[Event]) -> str:
        """The topic events of ``event_type`` travel on (e.g. for an outbox row)."""
        return self._topic_for(self._resolve(event_type))

    async def _ensure(self, *topics: str) -> None:
        wanted = [t for t in topics if t not in self._ensured]
        if not wanted or not self._create_topics:
            return
        admin = self.transport.admin()
        await admin.start()
        try:
            await ensure_topics(admin, plan_topics(wanted, defaults=self._defaults))
        finally:
            await admin.stop()
        self._ensured.update(wanted)

    async def publish(
        self, event: Event, *, context: ExecutionContext | None = None
    ) -> RecordMetadata:
        """Send ``event`` to its type's topic (with ``context``'s correlation id)."""
        if not self._started:
            raise ConsumerError("the event bus is not started; call 'await bus.start()' first")
        topic = self._topic_for(type(event))
        await self._ensure(topic)
        with execution_context(context) if context is not None else contextlib.nullcontext():
            meta = await self._producer.send(topic, event)
        self._published += 1
        return meta

    async def subscribe(self, event_type: str | type[Event], handler: EventHandler) -> None:
        """Call ``handler(event)`` or ``handler(event, context)`` for every event of
        ``event_type`` (several may subscribe; a failure retries the event for all of them,
        so handlers must be idempotent)."""
        cls = self._resolve(event_type)
        first = cls not in self._subscribers
        self._subscribers.setdefault(cls, []).append((handler, _takes_context(handler)))
        if first and self._started:
            await self._restart_consumer()

    async def _restart_consumer(self) -> None:
        async with self._lock:
            await self._stop_consumer()
            if not self._subscribers:
                return
            topics = sorted({self._topic_for(cls) for cls in self._subscribers})
            await self._ensure(*topics)
            consumer = EventConsumer(
                self.transport,
                self.registry,
                topics=topics,
                group_id=self.group_id,
                retry_policy=self._policy,
                event_types=self._types,
                tracer=self._tracer,
                instruments=self._instruments,
                topic_defaults=self._defaults,
                poll_timeout_ms=self._poll_timeout_ms,
                isolation_level=self._isolation_level,
            )
            for cls in self._subscribers:
                consumer.add_handler(cls, self._fan_out(cls))
            consumer.use(bind_record_context)
            await consumer.start()
            self._consumer = consumer
            self._task = asyncio.create_task(consumer.run(), name=f"event-bus-{self.group_id}")

    def _fan_out(self, cls: type[Event]) -> EventHandler:
        async def deliver(event: Event) -> None:
            ctx = current_execution_context()
            for handler, takes_context in list(self._subscribers.get(cls, ())):
                if takes_context:
                    await handler(event, ctx)
                else:
                    await handler(event)

        return deliver

    async def _stop_consumer(self) -> None:
        consumer, task = self._consumer, self._task
        self._consumer, self._task = None, None
        if consumer is None or task is None:
            return
        consumer.request_stop()
        with contextlib.suppress(Exception):
            await task
        s = consumer.stats
        self._retired["consumed"] += s.consumed
        self._retired["handled"] += s.handled
        self._retired["failed"] += s.failed
        self._retired["retried"] += s.retried
        self._retired["dlq"] += s.dead_lettered
        self._retired_s += s.processing_s

    async def _broker_answers(self) -> bool:
        admin = self.transport.admin()
        try:
            async with asyncio.timeout(self.health_timeout_s):
                await admin.start()
                await admin.list_topics()
            return True
        except (StreamingError, OSError, TimeoutError) as exc:
            log.warning("event bus health: broker did not answer", error=str(exc))
            return False
        finally:
            with contextlib.suppress(StreamingError, OSError, TimeoutError):
                await admin.stop()

    async def health_check(self) -> EventBusHealth:
        """UNHEALTHY when the broker does not answer within ``health_timeout_s`` (asked on
        every call) or the bus is not running; DEGRADED when publishing works but the
        consumer loop died; else HEALTHY."""
        if not await self._broker_answers() or not self._started:
            return EventBusHealth.UNHEALTHY
        if self._task is not None and self._task.done():
            return EventBusHealth.DEGRADED
        return EventBusHealth.HEALTHY

    def _dlqs(self, event_type: str | type[Event] | None) -> dict[str, type[Event]]:
        types = [self._resolve(event_type)] if event_type is not None else list(self._subscribers)
        return {dlq_topic(self._topic_for(cls), self.group_id): cls for cls in types}

    async def dead_letters(self, event_type: str | type[Event] | None = None) -> list[DeadLetter]:
        """Every event in the bus's DLQ topics (of ``event_type``, else of every subscribed
        type) that :meth:`replay` has not moved back, oldest first per partition."""
        dlqs = self._dlqs(event_type)
        admin = self.transport.admin()
        await admin.start()
        try:
            present = await admin.list_topics()
        finally:
            await admin.stop()
        deserializer = EventDeserializer(self.registry, event_types=self._types)
        found: list[DeadLetter] = []

        for dlq, cls in dlqs.items():
            if dlq not in present:
                continue
            moved = await self._moved(dlq, cls)

            async def collect(
                record: Record,
                dlq: str = dlq,
                cls: type[Event] = cls,
                moved: Callable[[int, int], bool] = moved,
            ) -> None:
                if moved(record.partition, record.offset):
                    return
                found.append(await dead_letter_of(record, dlq, cls, deserializer))

            await read_topic(
                self.transport,
                dlq,
                from_beginning=True,
                max_records=None,
                idle_timeout_s=None,
                on_record=collect,
                to_end=True,
            )
        return found

    async def _moved(self, dlq: str, cls: type[Event]) -> Callable[[int, int], bool]:
        from streaming.replay.redrive import DlqRedriver  # replay sits beside clients

        ledger = await DlqRedriver(self.transport, self._topic_for(cls), self.group_id).ledger()
        return ledger.was_moved

    async def replay(
        self, event_type: str | type[Event] | None = None, *, since: datetime | None = None
    ) -> int:
        """Recover events of ``event_type`` (else of every subscribed type); returns how many
        records are delivered again (for ``since``: offsets re-read, which counts the
        markers of transactions too, so an upper bound).

        Without ``since``: the dead letters go back to their topic, each at most once (a
        letter that keeps failing is parked in ``<topic>.<group>.parking`` after 3
        replays). With ``since``: the bus's consumer group is rewound to the first event at
        or after ``since`` and everything from there is delivered again (handlers must be
        idempotent); the consumer is stopped for the rewind and restarted.
        """
        from streaming.replay.redrive import DlqRedriver

        if since is not None:
            return await self._rewind(event_type, since)
        moved = 0
        for cls in self._dlqs(event_type).values():
            redriver = DlqRedriver(self.transport, self._topic_for(cls), self.group_id)
            result = await redriver.redrive(dry_run=False)
            moved += result.redriven
        return moved

    async def _rewind(self, event_type: str | type[Event] | None, since: datetime) -> int:
        from streaming.replay import OffsetManager, ResetStrategy

        types = [self._resolve(event_type)] if event_type is not None else list(self._subscribers)
        topics = {self._topic_for(cls): None for cls in types}
        async with self._lock:
            await self._stop_consumer()
        try:
            manager = OffsetManager(self.transport)
            plan = await manager.plan(
                self.group_id, ResetStrategy.to_datetime(since), topics=topics
            )
            await manager.execute(plan)
        finally:
            if self._started:
                await self._restart_consumer()
        return plan.total_re_read

    def get_metrics(self) -> EventBusMetrics:
        handled, failed = self._retired["handled"], self._retired["failed"]
        retried, dlq, seconds = self._retired["retried"], self._retired["dlq"], self._retired_s
        if self._consumer is not None:
            s = self._consumer.stats
            handled, failed = handled + s.handled, failed + s.failed
            retried, dlq, seconds = (
                retried + s.retried,
                dlq + s.dead_lettered,
                seconds + s.processing_s,
            )
        return EventBusMetrics(
            events_published=self._published,
            events_processed=handled,
            events_failed=failed,
            events_retried=retried,
            events_dead_lettered=dlq,
            average_processing_time_ms=seconds * 1000 / handled if handled else 0.0,
        )


class KafkaEventBus(TransportEventBus):
    """The bus on a real Kafka cluster: ``KafkaEventBus.from_settings(kafka, registry)``."""

    @classmethod
    def from_settings(
        cls, settings: KafkaSettings, registry: SchemaRegistry, **options: Any
    ) -> KafkaEventBus:
        from streaming.transport.kafka import KafkaTransport

        options.setdefault("topic_defaults", TopicDefaults.from_settings(settings))
        return cls(KafkaTransport(settings), registry, **options)


class InMemoryEventBus(TransportEventBus):
    """The bus in this process only (in-memory broker and registry), same behaviour."""

    def __init__(
        self,
        transport: InMemoryTransport | None = None,
        registry: SchemaRegistry | None = None,
        **options: Any,
    ) -> None:
        options.setdefault("topic_defaults", TopicDefaults(partitions=1))
        options.setdefault("retry_policy", RetryPolicy(attempts=3, delays_s=(0.1, 0.5)))
        super().__init__(
            transport or InMemoryTransport(),
            registry or InMemorySchemaRegistryClient(),
            **options,
        )


__all__ = [
    "DeadLetter",
    "EventBus",
    "EventBusHealth",
    "EventBusMetrics",
    "EventHandler",
    "InMemoryEventBus",
    "KafkaEventBus",
    "TransportEventBus",
    "bind_record_context",
    "default_topic_for",
]


def create_event_bus(
    settings: Settings | None = None, *, registry: SchemaRegistry | None = None, **options: Any
) -> TransportEventBus:
    """The bus ``MESSAGING_EVENT_BUS_TYPE`` names: ``in_memory`` (one process, for tests
    and demos) or ``kafka`` (brokers from ``KAFKA_*``; schemas from ``registry``, else a
    :class:`~streaming.serde.client.SchemaRegistryClient` on ``REGISTRY_URL`` that the
    caller closes with ``await bus.registry.aclose()`` when done). ``settings`` defaults
    to :func:`~streaming.config.get_settings`; ``options`` go to the bus's constructor."""
    from streaming.config import get_settings
    from streaming.serde.client import SchemaRegistryClient

    settings = settings or get_settings()
    if settings.messaging.event_bus_type == "in_memory":
        return InMemoryEventBus(registry=registry, **options)
    return KafkaEventBus.from_settings(
        settings.kafka, registry or SchemaRegistryClient(settings.registry), **options
    )


__all__ += ["create_event_bus"]
