"""The typed consumer: decode, dispatch to a handler per event type, commit when durable.

Each record runs through a chain of middlewares of the shape ``async (message,
call_next)``: tracing (a ``process <topic>`` span) -> retry routing (a failure goes to
``<topic>.<group>.retry.<n>`` or the DLQ) -> decoding -> the user's middlewares -> the
handler. A record's offset is committed only after the chain returned, i.e. after the
handler succeeded or the failed record was acknowledged by its retry/DLQ topic.

Flow control never sleeps in the loop: a retry record that is not yet due (``x-not-before``)
pauses only its own partition until then, and a failed retry/DLQ write (or a registry
outage while decoding) rewinds and pauses only that partition with exponential backoff.
Offsets are committed after every batch and on partition revoke; :meth:`EventConsumer.stop`
(or SIGTERM) finishes the record in flight, commits and leaves the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import structlog
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode, Tracer

from streaming.errors import CommitFencedError, ConfigError, StreamingError, TransportError
from streaming.events import EVENT_TYPES, Event, EventDeserializer, EventTypes
from streaming.producer import H_EVENT_ID, TopicGuard
from streaming.retry import (
    H_NOT_BEFORE,
    RetryPolicy,
    attempt_of,
    retry_topic,
)
from streaming.retry_router import RetryRouter, RetryWriteError
from streaming.security.rbac import Action
from streaming.serde.catalog import SchemaCatalog
from streaming.serde.client import SchemaRegistry
from streaming.serde.context import SerializationContext
from streaming.telemetry import (
    ERROR_TYPE,
    INSTRUMENTATION_NAME,
    MessagingInstruments,
    error_type,
    global_instruments,
    message_id,
    metric_attributes,
    process_span,
)
from streaming.topics import TopicDefaults, ensure_failure_topics
from streaming.transport.base import (
    ConsumerTransport,
    IsolationLevel,
    ProducerTransport,
    Record,
    TopicPartition,
    TransportFactory,
)

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=Event)


@dataclass(frozen=True, slots=True)
class Message:
    """One record on its way through the middleware chain; ``event`` once decoded."""

    record: Record
    group: str
    attempt: int
    event: Event | None = None


CallNext = Callable[[Message], Awaitable[None]]
Middleware = Callable[[Message, CallNext], Awaitable[None]]
Handler = Callable[[Any], Awaitable[None]]


class ConsumerError(StreamingError):
    """The consumer is misconfigured or misused."""


class UnhandledEventError(ConsumerError):
    """A record's event type has no handler and the consumer dead-letters those."""


class TransientProcessingError(StreamingError):
    """Processing cannot finish now but may later (e.g. the registry is down): rewind."""

    retriable = True


@dataclass
class ConsumerStats:
    """Counters behind ``get_metrics()``; cheap to keep, read at any time."""

    consumed: int = 0
    handled: int = 0
    skipped: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    rewinds: int = 0
    commits: int = 0
    processing_s: float = 0.0

    @property
    def average_processing_ms(self) -> float:
        return self.processing_s * 1000 / self.handled if self.handled else 0.0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class EventConsumer:
    """Consume typed events from ``topics`` as consumer group ``group_id``.

    Register handlers with ``@consumer.handler(OrderPlaced)``, middlewares with
    :meth:`use`, then ``await consumer.run()`` (or ``async with consumer:`` plus
    ``await consumer.run()``). Records of a type without a handler are skipped
    (``unhandled="skip"``) or dead-lettered (``unhandled="dlq"``). Records of aborted
    transactions never reach handlers (``isolation_level="read_committed"``, the default).
    Metrics go to ``instruments``, else to the global meter provider.
    """

    def __init__(
        self,
        transport: TransportFactory,
        registry: SchemaRegistry,
        *,
        topics: Sequence[str],
        group_id: str,
        retry_policy: RetryPolicy | None = None,
        event_types: EventTypes = EVENT_TYPES,
        catalog: SchemaCatalog | None = None,
        tracer: Tracer | None = None,
        instruments: MessagingInstruments | None = None,
        guard: TopicGuard | None = None,
        create_failure_topics: bool = True,
        topic_defaults: TopicDefaults | None = None,
        unhandled: Literal["skip", "dlq"] = "skip",
        max_poll_records: int = 500,
        poll_timeout_ms: int = 500,
        session_timeout_ms: int = 10_000,
        auto_offset_reset: str = "earliest",
        isolation_level: IsolationLevel = "read_committed",
        backoff_s: tuple[float, float] = (0.1, 5.0),
        clock_ms: Callable[[], int] = _now_ms,
        rng: random.Random | None = None,
        lag_interval_s: float = 5.0,
    ) -> None:
        if not topics:
            raise ConfigError(["EventConsumer needs at least one topic"])
        self.topics = tuple(topics)
        self.group_id = group_id
        self.policy = retry_policy or RetryPolicy()
        self._transport = transport
        self._deserializer = EventDeserializer(registry, event_types=event_types, catalog=catalog)
        self._types = event_types
        self._tracer = tracer or trace.get_tracer(INSTRUMENTATION_NAME)
        self._instruments = instruments or global_instruments()
        self._guard = guard
        self._create_failure_topics = create_failure_topics
        self._topic_defaults = topic_defaults
        self._unhandled = unhandled
        self._poll_timeout_ms = poll_timeout_ms
        self._max_poll_records = max_poll_records
        self._backoff = backoff_s
        self._clock_ms = clock_ms
        self._consumer: ConsumerTransport = transport.consumer(
            group_id=group_id,
            auto_offset_reset=auto_offset_reset,
            isolation_level=isolation_level,
            max_poll_records=max_poll_records,
            session_timeout_ms=session_timeout_ms,
        )
        self._producer: ProducerTransport = transport.producer()
        self._router = RetryRouter(
            self._producer,
            group=group_id,
            policy=self.policy,
            tracer=self._tracer,
            instruments=self._instruments,
            clock_ms=clock_ms,
            rng=rng,
        )
        self.retry_topics = frozenset(
            retry_topic(t, group_id, n) for t in self.topics for n in range(1, self.policy.attempts)
        )
        self._handlers: dict[type[Event], Handler] = {}
        self._middlewares: list[Middleware] = []
        self._chain: CallNext | None = None
        self.stats = ConsumerStats()
        # Partition state; reset on revoke. ``_generation`` fences late completions.
        self._generation = 0
        self._pending: dict[TopicPartition, int] = {}
        self._resume_at: dict[TopicPartition, int] = {}
        self._failures: dict[TopicPartition, int] = {}
        self._stopping = asyncio.Event()
        self._started = False
        self._lag_interval_ms = int(lag_interval_s * 1000)
        self._lag_due_ms = 0
        self._running = False

    # -- registration
    def handler(self, event_type: type[E]) -> Callable[[Callable[[E], Awaitable[None]]], Any]:
        """Decorator: ``@consumer.handler(OrderPlaced) async def on_order(event): ...``."""

        def register(fn: Callable[[E], Awaitable[None]]) -> Callable[[E], Awaitable[None]]:
            self.add_handler(event_type, fn)
            return fn

        return register

    def add_handler(self, event_type: type[E], fn: Callable[[E], Awaitable[None]]) -> None:
        if event_type in self._handlers:
            raise ConsumerError(f"a handler for {event_type.__name__} is already registered")
        if event_type.avro_name not in self._types:
            raise ConsumerError(
                f"{event_type.__name__} is not in the consumer's event_types; pass "
                "event_types=EVENT_TYPES.with_types(...)"
            )
        self._handlers[event_type] = fn
        self._chain = None

    def use(self, middleware: Middleware) -> Middleware:
        """Add a middleware ``async (message, call_next)`` (runs after decoding, in order)."""
        self._middlewares.append(middleware)
        self._chain = None
        return middleware

    # -- lifecycle
    async def start(self) -> None:
        if self._started:
            return
        if self._guard is not None:
            for topic in self.topics:
                await self._guard.check(topic, Action.READ)
        retry_topics = sorted(self.retry_topics)
        admin = self._transport.admin()
        await admin.start()
        try:
            if self._create_failure_topics:
                await ensure_failure_topics(
                    admin, self.topics, self.group_id, self.policy, self._topic_defaults
                )
            else:  # subscribing to a missing topic fails on a real broker: skip those
                present = await admin.list_topics()
                retry_topics = [t for t in retry_topics if t in present]
        finally:
            await admin.stop()
        await self._producer.start()
        self._consumer.subscribe(
            [*self.topics, *retry_topics],
            on_assigned=self._on_assigned,
            on_revoked=self._on_revoked,
        )
        await self._consumer.start()
        self._started = True
        log.info("consumer started", group=self.group_id, topics=list(self.topics))

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.request_stop()
        await self.close()

    def request_stop(self) -> None:
        """Ask :meth:`run` to finish the record in flight, commit and return."""
        self._stopping.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT request a graceful stop (call from the running loop)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)

    async def close(self) -> None:
        """Commit what is done, leave the group, stop the retry producer (idempotent)."""
        if not self._started:
            return
        self._started = False
        try:
            await self._commit()
        finally:
            await self._consumer.stop()
            await self._producer.stop()
        log.info("consumer stopped", group=self.group_id, **self._stats_fields())

    async def run(self, *, max_batches: int | None = None) -> None:
        """Consume until :meth:`request_stop` (or ``max_batches`` polls), then close."""
        await self.start()
        self._running = True
        batches = 0
        try:
            while not self._stopping.is_set():
                await self.poll_once()
                batches += 1
                if max_batches is not None and batches >= max_batches:
                    break
        finally:
            self._running = False
            await self.close()

    @property
    def running(self) -> bool:
        return self._running

    # -- the loop
    async def poll_once(self) -> int:
        """One poll, process it partition by partition (concurrently), commit. Returns
        how many records were processed."""
        self._resume_due()
        timeout = self._poll_timeout_ms
        if self._resume_at:
            timeout = max(0, min(timeout, min(self._resume_at.values()) - self._clock_ms()))
        batch = await self._consumer.poll(timeout_ms=timeout, max_records=self._max_poll_records)
        if not batch:
            await self._report_lag()  # caught up: the gauge should say so
            return 0
        generation = self._generation
        done = await asyncio.gather(
            *(self._process_partition(tp, records, generation) for tp, records in batch.items())
        )
        await self._commit()
        await self._report_lag()
        return sum(done)

    async def _report_lag(self) -> None:
        """Refresh the lag gauge (end offset - position) every ``lag_interval_s``: an
        end-offsets request is a broker round trip, too costly for every poll."""
        if self._clock_ms() < self._lag_due_ms:
            return
        self._lag_due_ms = self._clock_ms() + self._lag_interval_ms
        owned = sorted(self._consumer.assignment())
        if not owned:
            return
        try:
            ends = await self._consumer.end_offsets(owned)
            for tp in owned:
                lag = ends[tp] - await self._consumer.position(tp)
                self._instruments.lag.set(
                    group=self.group_id, topic=tp.topic, partition=tp.partition, lag=lag
                )
        except TransportError as exc:  # a metric, not worth failing the loop for
            log.debug("lag not refreshed", error=str(exc))

    async def _process_partition(
        self, tp: TopicPartition, records: list[Record], generation: int
    ) -> int:
        chain = self._get_chain()
        is_retry = tp.topic in self.retry_topics
        count = 0
        for record in records:
            if self._stopping.is_set() or generation != self._generation:
                return count
            attempt = 1
            if is_retry:
                due = _not_before(record)
                if due is not None and due > self._clock_ms():
                    self._rewind(tp, record.offset, due, generation)
                    return count
                attempt = attempt_of(record.headers)
            self.stats.consumed += 1
            try:
                await chain(Message(record, self.group_id, attempt))
            except (RetryWriteError, TransientProcessingError) as exc:
                failures = self._failures.get(tp, 0) + 1
                self._failures[tp] = failures
                low, high = self._backoff
                delay_s = min(high, low * 2 ** (failures - 1))
                log.warning(
                    "rewinding partition",
                    partition=str(tp),
                    offset=record.offset,
                    retry_in_s=delay_s,
                    error=str(exc),
                )
                self.stats.rewinds += 1
                self._rewind(tp, record.offset, self._clock_ms() + int(delay_s * 1000), generation)
                return count
            self._failures.pop(tp, None)
            if generation == self._generation:
                self._pending[tp] = record.offset + 1
            count += 1
        if records and generation == self._generation:
            # Every record of the poll is done: commit the position, which is past any
            # transaction markers after the last record (else the lag never reaches 0).
            with contextlib.suppress(TransportError):
                position = await self._consumer.position(tp)
                if position > self._pending.get(tp, position):
                    self._pending[tp] = position
        return count

    def _rewind(self, tp: TopicPartition, offset: int, until_ms: int, generation: int) -> None:
        """Seek ``tp`` back to ``offset`` and pause it until ``until_ms``; others flow on."""
        if generation != self._generation or tp not in self._consumer.assignment():
            return
        self._consumer.seek(tp, offset)
        self._consumer.pause(tp)
        self._resume_at[tp] = until_ms

    def _resume_due(self) -> None:
        if not self._resume_at:
            return
        now = self._clock_ms()
        due = [tp for tp, at in self._resume_at.items() if at <= now]
        for tp in due:
            del self._resume_at[tp]
        assigned = self._consumer.assignment()
        ready = [tp for tp in due if tp in assigned]
        if ready:
            self._consumer.resume(*ready)

    async def _commit(self) -> None:
        if not self._pending:
            return
        offsets, generation = dict(self._pending), self._generation
        self._pending.clear()
        try:
            await self._consumer.commit(offsets)
            self.stats.commits += 1
        except CommitFencedError as exc:  # a zombie: never commit these offsets later
            log.warning("lost the group generation; offsets dropped", error=str(exc))
        except TransportError as exc:
            log.warning("commit failed; records will be redelivered", error=str(exc))
            if generation == self._generation:
                for tp, off in offsets.items():
                    self._pending.setdefault(tp, off)

    async def _on_assigned(self, tps: Sequence[TopicPartition]) -> None:
        log.info("partitions assigned", group=self.group_id, partitions=[str(t) for t in tps])

    async def _on_revoked(self, tps: Sequence[TopicPartition]) -> None:
        """Commit what is done for the revoked partitions, then forget their state. A
        member that lost its generation commits nothing (the transport fences it)."""
        self._generation += 1
        revoked = set(tps)
        offsets = {tp: off for tp, off in self._pending.items() if tp in revoked}
        if offsets:
            try:
                await self._consumer.commit(offsets)
                self.stats.commits += 1
            except CommitFencedError as exc:  # a zombie's revoke: the new owner has them
                log.warning("lost the group generation; offsets dropped", error=str(exc))
            except TransportError as exc:
                log.warning("commit on revoke failed", error=str(exc))
        for tp in revoked:
            self._pending.pop(tp, None)
            self._resume_at.pop(tp, None)
            self._failures.pop(tp, None)
            self._instruments.lag.forget(
                group=self.group_id, topic=tp.topic, partition=tp.partition
            )

    # -- the middleware chain
    def _get_chain(self) -> CallNext:
        if self._chain is None:
            steps: list[Middleware] = [
                self._trace_step,
                self._route_step,
                self._decode_step,
                *self._middlewares,
            ]
            chain: CallNext = self._dispatch
            for step in reversed(steps):
                chain = _link(step, chain)
            self._chain = chain
        return self._chain

    async def _trace_step(self, message: Message, call_next: CallNext) -> None:
        with process_span(
            self._tracer,
            message.record,
            group=self.group_id,
            message_id=message_id(message.record.header(H_EVENT_ID)),
        ):
            await call_next(message)

    async def _route_step(self, message: Message, call_next: CallNext) -> None:
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            await call_next(message)
        except (TransientProcessingError, RetryWriteError) as exc:
            failure = exc
            raise
        except Exception as exc:
            failure = exc
            self.stats.failed += 1
            span = trace.get_current_span()
            span.set_attribute(ERROR_TYPE, error_type(exc))
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
            # An unhandled type will not get a handler by retrying: straight to the DLQ.
            attempt = (
                self.policy.attempts if isinstance(exc, UnhandledEventError) else message.attempt
            )
            meta = await self._router.route(message.record, exc, attempt)
            if meta.topic.endswith(".dlq"):
                self.stats.dead_lettered += 1
            else:
                self.stats.retried += 1
            return
        finally:
            elapsed = time.perf_counter() - started
            self._record_delivery(message.record, elapsed, failure)
        self.stats.processing_s += elapsed

    def _record_delivery(
        self, record: Record, elapsed_s: float, failure: BaseException | None
    ) -> None:
        """One delivery to the application, as the messaging conventions count it: every
        record handed to the chain (handled, skipped or failed), ``error.type`` on failure."""
        attributes = metric_attributes(
            record.topic,
            operation="process",
            partition=record.partition,
            group=self.group_id,
            error=failure,
        )
        self._instruments.consumed.add(1, attributes)
        self._instruments.process_duration.record(elapsed_s, attributes)

    async def _decode_step(self, message: Message, call_next: CallNext) -> None:
        record = message.record
        if record.value is None:
            self.stats.skipped += 1
            return
        try:
            event = await self._deserializer.deserialize(
                record.value, SerializationContext.for_record(record)
            )
        except StreamingError as exc:
            if exc.retriable:  # e.g. the registry is unreachable: not poison, rewind
                raise TransientProcessingError(f"cannot decode now: {exc}") from exc
            raise
        await call_next(Message(record, message.group, message.attempt, event))

    async def _dispatch(self, message: Message) -> None:
        event = message.event
        assert event is not None
        fn = self._handlers.get(type(event))
        if fn is None:
            if self._unhandled == "dlq":
                raise UnhandledEventError(f"no handler registered for {type(event).__name__}")
            self.stats.skipped += 1
            return
        await fn(event)
        self.stats.handled += 1

    def _stats_fields(self) -> dict[str, Any]:
        s = self.stats
        return {
            "consumed": s.consumed,
            "handled": s.handled,
            "retried": s.retried,
            "dead_lettered": s.dead_lettered,
        }


def _link(step: Middleware, call_next: CallNext) -> CallNext:
    async def run(message: Message) -> None:
        await step(message, call_next)

    return run


def _not_before(record: Record) -> int | None:
    raw = record.header(H_NOT_BEFORE)
    if raw is None:
        return None
    with contextlib.suppress(ValueError):
        return int(raw)
    return None


__all__ = [
    "CallNext",
    "ConsumerError",
    "ConsumerStats",
    "EventConsumer",
    "Handler",
    "Message",
    "Middleware",
    "TransientProcessingError",
    "UnhandledEventError",
]
