"""The typed consumer: decode, dispatch to a handler per event type, commit when durable.

Each record runs through a chain of middlewares of the shape ``async (message,
call_next)`` (:mod:`streaming.clients.middlewares`): tracing (a ``process <topic>`` span)
-> retry routing (a failure goes to ``<topic>.<group>.retry.<n>`` or the DLQ) -> decoding
-> the user's middlewares -> the handler. A record's offset is committed only after the
chain returned, i.e. after the handler succeeded or the failed record was acknowledged by
its retry/DLQ topic.

Flow control never sleeps in the loop (:mod:`streaming.clients.flow`): a retry record that
is not yet due (``x-not-before``) pauses only its own partition until then, and a failed
retry/DLQ write (or a registry outage while decoding) rewinds and pauses only that
partition with exponential backoff. Offsets are committed after every batch (in the
background, while the next batch is processed; in order) and on partition revoke; :meth:`EventConsumer.stop` (or SIGTERM) finishes the record in flight,
commits and leaves the group. All settings are one frozen :class:`ConsumerOptions`.

Why ``EventConsumer`` is ~360 lines: it is the run loop and its rebalance callbacks;
options, flow state, middlewares and batches already live in their own modules, and
what is left shares the loop's state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar, Unpack

import structlog
from opentelemetry import trace

from streaming.clients.batch import BatchFailure, BatchHandler, BatchProcessor
from streaming.clients.chain import chain
from streaming.clients.consumer_options import ConsumerKeywords, ConsumerOptions
from streaming.clients.flow import PartitionFlow
from streaming.clients.middlewares import (
    CallNext,
    ConsumerError,
    ConsumerStats,
    DecodeMiddleware,
    DeliveryTally,
    Handler,
    Message,
    Middleware,
    RouteMiddleware,
    TraceMiddleware,
    TransientProcessingError,
    UnhandledEventError,
)
from streaming.clients.privacy import RevealMiddleware
from streaming.clients.retry import RetryPolicy, attempt_of
from streaming.clients.router import RetryRouter, RetryWriteError
from streaming.clients.topics import ensure_failure_topics
from streaming.core.heap import tune_heap
from streaming.core.lifecycle import AsyncService
from streaming.core.topics import retry_topic
from streaming.errors import TransportError
from streaming.events import Event, EventDeserializer
from streaming.privacy.reveal import FieldRevealer
from streaming.security.rbac import Action
from streaming.serde.client import SchemaRegistry
from streaming.telemetry import INSTRUMENTATION_NAME, global_instruments
from streaming.transport.base import (
    ConsumerTransport,
    ProducerTransport,
    Record,
    TopicPartition,
    TransportFactory,
)

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=Event)


class EventConsumer(AsyncService):
    """Consume typed events from ``topics`` as consumer group ``group_id``.

    Configure with ``options=ConsumerOptions(...)``, with its fields as keywords
    (``EventConsumer(transport, registry, topics=[...], group_id="g")``), or both (the
    keywords override). Register handlers with ``@consumer.handler(OrderPlaced)``,
    middlewares with :meth:`use`, then ``await consumer.run()`` (or ``async with
    consumer:`` plus ``await consumer.run()``). Records of a type without a handler are
    skipped (``unhandled="skip"``) or dead-lettered (``unhandled="dlq"``). Records of
    aborted transactions never reach handlers (``isolation_level="read_committed"``, the
    default). Metrics go to ``instruments``, else to the global meter provider.
    """

    def __init__(
        self,
        transport: TransportFactory,
        registry: SchemaRegistry,
        options: ConsumerOptions | None = None,
        **keywords: Unpack[ConsumerKeywords],
    ) -> None:
        if options is None:
            options = ConsumerOptions(**keywords)
        elif keywords:
            options = dataclasses.replace(options, **keywords)
        self.options = options
        self.topics: tuple[str, ...] = tuple(options.topics)
        self.group_id = group_id = options.group_id
        self.policy = options.retry_policy or RetryPolicy()
        self._transport = transport
        self._deserializer = EventDeserializer(
            registry, event_types=options.event_types, catalog=options.catalog
        )
        self._tracer = options.tracer or trace.get_tracer(INSTRUMENTATION_NAME)
        self._revealer = options.privacy or FieldRevealer.from_settings(transport)
        self._instruments = options.instruments or global_instruments()
        self._clock_ms = options.clock_ms
        self._consumer: ConsumerTransport = transport.consumer(
            group_id=group_id,
            auto_offset_reset=options.auto_offset_reset,
            isolation_level=options.isolation_level,
            max_poll_records=options.max_poll_records,
            session_timeout_ms=options.session_timeout_ms,
        )
        self._producer: ProducerTransport = transport.producer()
        self._router = RetryRouter(
            self._producer,
            group=group_id,
            policy=self.policy,
            tracer=self._tracer,
            instruments=self._instruments,
            clock_ms=options.clock_ms,
            rng=options.rng,
        )
        self.retry_topics = frozenset(
            retry_topic(t, group_id, n) for t in self.topics for n in range(1, self.policy.attempts)
        )
        self._handlers: dict[type[Event], Handler] = {}
        self._batch_handlers: dict[type[Event], BatchHandler] = {}
        self._batches: BatchProcessor | None = None
        self._middlewares: list[Middleware] = []
        self._chain: CallNext | None = None
        self.stats = ConsumerStats()
        self._tally = DeliveryTally(self._instruments, group_id)
        self._flow = PartitionFlow(
            self._consumer, clock_ms=options.clock_ms, backoff_s=options.backoff_s
        )
        self._stopping = asyncio.Event()
        self._committing: asyncio.Task[None] | None = None
        self._started = False
        self._lag_interval_ms = int(options.lag_interval_s * 1000)
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
        if self._batch_handlers:
            raise ConsumerError(
                "this consumer has batch handlers; a consumer takes record handlers or "
                "batch handlers, not both (use a second consumer)"
            )
        self._check_type(event_type, self._handlers)
        self._handlers[event_type] = fn
        self._chain = None

    def batch_handler(
        self, event_type: type[E]
    ) -> Callable[[Callable[[list[E]], Awaitable[None]]], Any]:
        """Decorator: ``@consumer.batch_handler(OrderPlaced) async def on(events): ...``
        (a list per partition and poll; see :mod:`streaming.clients.batch`)."""

        def register(
            fn: Callable[[list[E]], Awaitable[None]],
        ) -> Callable[[list[E]], Awaitable[None]]:
            self.add_batch_handler(event_type, fn)
            return fn

        return register

    def add_batch_handler(
        self, event_type: type[E], fn: Callable[[list[E]], Awaitable[None]]
    ) -> None:
        """A consumer is a record or a batch consumer (as a Spring listener container is):
        mixing both is refused, use two consumer groups."""
        if self._handlers:
            raise ConsumerError(
                "this consumer has record handlers; a consumer takes record handlers or "
                "batch handlers, not both (use a second consumer)"
            )
        self._check_type(event_type, self._batch_handlers)
        self._batch_handlers[event_type] = fn
        self._chain = None

    def _check_type(self, event_type: type[Event], registered: dict[type[Event], Any]) -> None:
        if event_type in registered:
            raise ConsumerError(f"a handler for {event_type.__name__} is already registered")
        if event_type.avro_name not in self.options.event_types:
            raise ConsumerError(
                f"{event_type.__name__} is not in the consumer's event_types; pass "
                "event_types=EVENT_TYPES.with_types(...)"
            )

    def use(self, middleware: Middleware) -> Middleware:
        """Add a middleware ``async (message, call_next)`` (runs after decoding, in order)."""
        self._middlewares.append(middleware)
        self._chain = None
        return middleware

    # -- lifecycle
    async def start(self) -> None:
        if self._started:
            return
        options = self.options
        if options.guard is not None:
            for topic in self.topics:
                await options.guard.check(topic, Action.READ)
        retry_topics = sorted(self.retry_topics)
        admin = self._transport.admin()
        await admin.start()
        try:
            if options.create_failure_topics:
                await ensure_failure_topics(
                    admin, self.topics, self.group_id, self.policy, options.topic_defaults
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
        if options.tune_gc_on_start:
            tune_heap()
        log.info("consumer started", group=self.group_id, topics=list(self.topics))

    async def stop(self) -> None:
        """Stop as leaving ``async with`` does: end :meth:`run`, commit, then close."""
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
            await self._revealer.close()
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
        timeout = self._flow.poll_timeout_ms(self.options.poll_timeout_ms)
        batch = await self._consumer.poll(
            timeout_ms=timeout, max_records=self.options.max_poll_records
        )
        if not batch:
            await self._report_lag()  # caught up: the gauge should say so
            return 0
        generation = self._flow.generation
        done = await asyncio.gather(
            *(self._process_partition(tp, records, generation) for tp, records in batch.items())
        )
        await self._commit_in_background()
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
        if self._batches is not None:
            try:
                count, complete = await self._batches.process(tp, records, generation)
            finally:
                self._tally.flush(tp.topic, tp.partition)
            if complete and records:
                await self._flow.caught_up(tp, generation)
            return count
        flow = self._flow
        is_retry = tp.topic in self.retry_topics
        stats, group, stopping = self.stats, self.group_id, self._stopping
        count = 0
        try:
            for record in records:
                if stopping.is_set() or generation != flow.generation:
                    return count
                attempt = 1
                if is_retry:
                    if flow.not_due(tp, record, generation):
                        return count
                    attempt = attempt_of(record.headers)
                stats.consumed += 1
                try:
                    await chain(Message(record, group, attempt))
                except (RetryWriteError, TransientProcessingError) as exc:
                    stats.rewinds += 1
                    flow.back_off(tp, record, generation, str(exc))
                    return count
                flow.done(tp, record, generation)
                count += 1
        finally:
            self._tally.flush(tp.topic, tp.partition)
        if records:
            await flow.caught_up(tp, generation)
        return count

    async def _commit_in_background(self) -> None:
        """Commit this poll's offsets while the next poll is processed (Kafka's
        ``commitAsync``): a commit round trip per poll no longer stalls the loop. The
        previous commit is awaited first, so commits reach the broker in order."""
        await self._settle_commit()
        self._committing = asyncio.get_running_loop().create_task(self._commit_now())

    async def _settle_commit(self) -> None:
        """Wait for the commit in flight, if any."""
        task, self._committing = self._committing, None
        if task is not None:
            await task

    async def _commit(self) -> None:
        await self._settle_commit()
        await self._commit_now()

    async def _commit_now(self) -> None:
        if await self._flow.commit():
            self.stats.commits += 1

    async def _on_assigned(self, tps: Sequence[TopicPartition]) -> None:
        log.info("partitions assigned", group=self.group_id, partitions=[str(t) for t in tps])

    async def _on_revoked(self, tps: Sequence[TopicPartition]) -> None:
        """Commit what is done for the revoked partitions, then forget their state."""
        await self._settle_commit()  # an older commit must not land after this one
        revoked = set(tps)
        if await self._flow.revoke(revoked):
            self.stats.commits += 1
        for tp in revoked:
            self._instruments.lag.forget(
                group=self.group_id, topic=tp.topic, partition=tp.partition
            )

    # -- the middleware chain
    def _get_chain(self) -> CallNext:
        if self._chain is None:
            decoder = DecodeMiddleware(self._deserializer, self.stats)
            revealer = RevealMiddleware(self._revealer)
            decode: list[Middleware] = [decoder, revealer, *self._middlewares]
            steps: list[Middleware] = [
                TraceMiddleware(self._tracer),
                RouteMiddleware(self._router, self.stats, self._tally),
                *decode,
            ]
            self._chain = chain(steps, self._dispatch)
            self._batches = None
            if self._batch_handlers:
                self._batches = BatchProcessor(
                    handlers=self._batch_handlers,
                    prepare=lambda collect: chain(decode, collect),
                    direct=None
                    if self._middlewares
                    else partial(_decode_direct, decoder, revealer),
                    router=self._router,
                    flow=self._flow,
                    stats=self.stats,
                    tally=self._tally,
                    tracer=self._tracer,
                    group=self.group_id,
                    unhandled=self.options.unhandled,
                    retry_topics=self.retry_topics,
                    stopping=self._stopping.is_set,
                )
        return self._chain

    async def _dispatch(self, message: Message) -> None:
        event = message.event
        assert event is not None
        fn = self._handlers.get(type(event))
        if fn is None:
            if self.options.unhandled == "dlq":
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


async def _decode_direct(
    decoder: DecodeMiddleware, revealer: RevealMiddleware, record: Record
) -> Event | None:
    """What the decode chain gives a batch when there are no user middlewares."""
    event = await decoder.decode(record)
    return None if event is None else await revealer.reveal(event)


__all__ = [
    "BatchFailure",
    "BatchHandler",
    "CallNext",
    "ConsumerError",
    "ConsumerKeywords",
    "ConsumerOptions",
    "ConsumerStats",
    "EventConsumer",
    "Handler",
    "Message",
    "Middleware",
    "TransientProcessingError",
    "UnhandledEventError",
]
