"""The seed's ``EventBus``: publish typed events, subscribe handlers by event type.

A thin facade over :class:`~streaming.clients.producer.EventProducer` and
:class:`~streaming.clients.consumer.EventConsumer`, so a bus gets the same retry topics, DLQ,
tracing and commit policy. :class:`KafkaEventBus` runs on a real cluster;
:class:`InMemoryEventBus` runs the very same code on the in-memory transport and
registry, for tests and single-process demos. Each event type has its own topic
(``events.<EventType>`` unless ``topic_for`` says otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import structlog
from opentelemetry.trace import Tracer

from streaming.clients.consumer import ConsumerError, EventConsumer
from streaming.clients.producer import EventProducer
from streaming.clients.retry import RetryPolicy
from streaming.clients.topics import TopicDefaults, ensure_topics, plan_topics
from streaming.config import KafkaSettings, Settings
from streaming.context import ExecutionContext, execution_context
from streaming.events import EVENT_TYPES, Event, EventTypes
from streaming.serde.client import SchemaRegistry
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.telemetry import MessagingInstruments
from streaming.transport.base import IsolationLevel, RecordMetadata, TransportFactory
from streaming.transport.memory import InMemoryTransport

log = structlog.get_logger(__name__)

EventHandler = Callable[[Any], Awaitable[None]]


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


def default_topic_for(event_type: type[Event]) -> str:
    return f"events.{event_type.type_name()}"


class TransportEventBus:
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
        self._producer = EventProducer(transport, registry, tracer=tracer, instruments=instruments)
        self._subscribers: dict[type[Event], list[EventHandler]] = {}
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

    async def __aenter__(self) -> TransportEventBus:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _resolve(self, event_type: str | type[Event]) -> type[Event]:
        if isinstance(event_type, str):
            found = self._types.by_event_type(event_type) or self._types.get(event_type)
            if found is None:
                raise ConsumerError(
                    f"unknown event type {event_type!r}; known: {sorted(self._types)}"
                )
            return found
        return event_type

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
        """Call ``handler(event)`` for every event of ``event_type`` (several may subscribe;
        a failure retries the event for all of them, so handlers must be idempotent)."""
        cls = self._resolve(event_type)
        first = cls not in self._subscribers
        self._subscribers.setdefault(cls, []).append(handler)
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
            await consumer.start()
            self._consumer = consumer
            self._task = asyncio.create_task(consumer.run(), name=f"event-bus-{self.group_id}")

    def _fan_out(self, cls: type[Event]) -> EventHandler:
        async def deliver(event: Event) -> None:
            for handler in list(self._subscribers.get(cls, ())):
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

    async def health_check(self) -> EventBusHealth:
        """UNHEALTHY before start; DEGRADED if the consumer loop died (publishing works)."""
        if not self._started:
            return EventBusHealth.UNHEALTHY
        if self._task is not None and self._task.done():
            return EventBusHealth.DEGRADED
        return EventBusHealth.HEALTHY

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
    "EventBus",
    "EventBusHealth",
    "EventBusMetrics",
    "EventHandler",
    "InMemoryEventBus",
    "KafkaEventBus",
    "TransportEventBus",
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
