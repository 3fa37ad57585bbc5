"""Batch handlers: a partition's records of one poll handed to the handler as one list.

``@consumer.batch_handler(OrderPlaced) async def on_orders(events: list[OrderPlaced])``.
The semantics are Spring Kafka's batch listener with its ``DefaultErrorHandler``, mapped
onto our non-blocking retry topics:

- every record is decoded (and run through the user's middlewares) first; a record that
  cannot be (poison) is routed to its retry topic or the DLQ on its own, the others of
  the poll still form the batch;
- consecutive records of one event type form a batch, in offset order (a record of
  another type ends it); the handler returning means all of them are done;
- ``raise BatchFailure(index, cause)`` (Spring's ``BatchListenerFailedException``): the
  records before ``index`` are done, the record at ``index`` goes to retry/DLQ with
  ``cause``, and the records after it are handed to the handler again as a new batch
  (Spring seeks and redelivers them);
- any other exception (Spring's fallback: retry the whole batch, then recover each
  record) sends every record of the batch to its retry topic (or the DLQ when attempts
  are exhausted or the error is fatal) one by one, so each retries on its own;
- a transient failure (:class:`TransientProcessingError`, a failed retry write) rewinds
  the partition to the first record not done, as for record handlers.

Offsets are committed up to the last record done, in order. One ``process <topic>`` span
covers a batch, linked to each record's producer span (the messaging conventions' batch
processing); deliveries are counted per record.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Link, SpanKind, Tracer

from streaming.clients.flow import PartitionFlow
from streaming.clients.middlewares import (
    CallNext,
    ConsumerStats,
    DeliveryTally,
    Message,
    TransientProcessingError,
    UnhandledEventError,
    route_failure,
)
from streaming.clients.publish import MESSAGING_BATCH_MESSAGE_COUNT
from streaming.clients.retry import attempt_of
from streaming.clients.router import RetryRouter, RetryWriteError
from streaming.errors import StreamingError
from streaming.events import Event
from streaming.telemetry import (
    KAFKA,
    MESSAGING_CONSUMER_GROUP_NAME,
    MESSAGING_DESTINATION_NAME,
    MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_SYSTEM,
    span_context_of,
)
from streaming.transport.base import Record, TopicPartition

BatchHandler = Callable[[list[Any]], Awaitable[None]]
_TRANSIENT = (TransientProcessingError, RetryWriteError)


class BatchFailure(StreamingError):
    """Raised by a batch handler: ``events[index]`` failed with ``cause``.

    The records before it are done; it goes to retry/DLQ as ``cause`` would send it; the
    records after it are handed to the handler again.
    """

    def __init__(self, index: int, cause: BaseException) -> None:
        super().__init__(f"record {index} of the batch failed: {type(cause).__name__}: {cause}")
        self.index = index
        self.cause = cause


MAX_BATCH_LINKS = 128
"""Links per batch span: OpenTelemetry's default span link limit (OTEL_SPAN_LINK_COUNT_LIMIT)."""


@dataclass(slots=True)
class _Item:
    """A polled record on its way: decoded ``event``, or the ``failure`` that stopped it."""

    record: Record
    attempt: int
    event: Event | None = None
    failure: Exception | None = None


class _Stop(Exception):
    """The partition was rewound at a record: nothing after it may be done now."""


class BatchProcessor:
    """Processes one partition's records of a poll with the registered batch handlers."""

    def __init__(
        self,
        *,
        handlers: Mapping[type[Event], BatchHandler],
        prepare: Callable[[CallNext], CallNext],
        direct: Callable[[Record], Awaitable[Event | None]] | None = None,
        router: RetryRouter,
        flow: PartitionFlow,
        stats: ConsumerStats,
        tally: DeliveryTally,
        tracer: Tracer,
        group: str,
        unhandled: str,
        retry_topics: frozenset[str],
        stopping: Callable[[], bool],
    ) -> None:
        self._handlers = handlers
        self._decoded: dict[tuple[str, int, int], Event] = {}
        self._prepare = prepare(self._collect)
        # Without user middlewares the chain is decode + reveal: called directly, no
        # Message per step (a record's chain costs more than its handler's share).
        self._direct = direct
        self._router = router
        self._flow = flow
        self._stats = stats
        self._tally = tally
        self._tracer = tracer
        self._group = group
        self._unhandled = unhandled
        self._retry_topics = retry_topics
        self._stopping = stopping

    async def _collect(self, message: Message) -> None:
        """The end of the decode chain: keep the event for the batch."""
        record = message.record
        assert message.event is not None
        self._decoded[(record.topic, record.partition, record.offset)] = message.event

    async def process(
        self, tp: TopicPartition, records: Sequence[Record], generation: int
    ) -> tuple[int, bool]:
        """Handle ``records``; how many are done, and whether all of them are."""
        items, rewind = await self._decode(tp, records, generation)
        run = _Pass(self, tp, generation)
        try:
            await run.handle(items)
        except _Stop:
            return run.done, False
        if rewind is not None:
            record, exc = rewind
            self._stats.rewinds += 1
            self._flow.back_off(tp, record, generation, str(exc))
            return run.done, False
        return run.done, len(items) == len(records)

    async def _decode(
        self, tp: TopicPartition, records: Sequence[Record], generation: int
    ) -> tuple[list[_Item], tuple[Record, Exception] | None]:
        is_retry = tp.topic in self._retry_topics
        items: list[_Item] = []
        for record in records:
            if self._stopping() or generation != self._flow.generation:
                break
            attempt = 1
            if is_retry:
                if self._flow.not_due(tp, record, generation):
                    break
                attempt = attempt_of(record.headers)
            self._stats.consumed += 1
            item = _Item(record, attempt)
            try:
                if self._direct is not None:
                    item.event = await self._direct(record)
                else:
                    await self._prepare(Message(record, self._group, attempt))
                    key = (record.topic, record.partition, record.offset)
                    item.event = self._decoded.pop(key, None)
            except _TRANSIENT as exc:
                self._stats.consumed -= 1  # delivered again after the rewind
                return items, (record, exc)
            except Exception as exc:
                item.failure = exc
            items.append(item)
        return items, None

    def span(self, tp: TopicPartition, run: list[_Item]) -> Any:
        """One ``process <topic>`` span for a batch, linked to its records' producers (the
        first :data:`MAX_BATCH_LINKS`: the SDK keeps no more links than that per span)."""
        links = []
        for item in run[:MAX_BATCH_LINKS]:
            producer = span_context_of(item.record.headers)
            if producer is not None:
                links.append(Link(producer))
        attributes: dict[str, str | int] = {
            MESSAGING_SYSTEM: KAFKA,
            MESSAGING_DESTINATION_NAME: tp.topic,
            MESSAGING_DESTINATION_PARTITION_ID: str(tp.partition),
            MESSAGING_OPERATION_TYPE: "process",
            MESSAGING_OPERATION_NAME: "process",
            MESSAGING_CONSUMER_GROUP_NAME: self._group,
            MESSAGING_BATCH_MESSAGE_COUNT: len(run),
        }
        return self._tracer.start_as_current_span(
            f"process {tp.topic}", kind=SpanKind.CONSUMER, attributes=attributes, links=links
        )


class _Pass:
    """One partition's records of one poll, handled in offset order."""

    def __init__(self, processor: BatchProcessor, tp: TopicPartition, generation: int) -> None:
        self._p = processor
        self._tp = tp
        self._generation = generation
        self.done = 0

    async def handle(self, items: list[_Item]) -> None:
        p = self._p
        i = 0
        while i < len(items):
            item = items[i]
            event = item.event
            if item.failure is not None:
                await self._route(item, item.failure, 0.0)
                i += 1
                continue
            if event is None:  # a tombstone (counted as skipped), or a middleware ended it
                self._done(item, 0.0, None)
                i += 1
                continue
            handler = p._handlers.get(type(event))
            if handler is None:
                if p._unhandled == "dlq":
                    missing = UnhandledEventError(f"no batch handler for {type(event).__name__}")
                    await self._route(item, missing, 0.0)
                else:
                    p._stats.skipped += 1
                    self._done(item, 0.0, None)
                i += 1
                continue
            j = i + 1
            while (
                j < len(items) and items[j].failure is None and type(items[j].event) is type(event)
            ):
                j += 1
            await self._run(handler, items[i:j])
            i = j

    async def _run(self, handler: BatchHandler, run: list[_Item]) -> None:
        """Call ``handler`` with ``run``'s events until every record of it is done."""
        while run:
            started = time.perf_counter()
            try:
                with self._p.span(self._tp, run):
                    await handler([item.event for item in run])
            except _TRANSIENT as exc:
                self._rewind(run[0], exc)
            except BatchFailure as exc:
                if not 0 <= exc.index < len(run):
                    await self._route_all(run, exc, started)
                    return
                share = (time.perf_counter() - started) / len(run)
                for item in run[: exc.index]:
                    self._handled(item, share)
                failed, cause = run[exc.index], exc.cause
                if isinstance(cause, _TRANSIENT):
                    self._rewind(failed, cause)
                if not isinstance(cause, Exception):
                    raise cause from exc
                await self._route(failed, cause, share)
                run = run[exc.index + 1 :]
            except Exception as exc:
                await self._route_all(run, exc, started)
                return
            else:
                self._all_handled(run, time.perf_counter() - started)
                return

    async def _route_all(self, run: list[_Item], exc: Exception, started: float) -> None:
        share = (time.perf_counter() - started) / len(run)
        for item in run:
            await self._route(item, exc, share)

    async def _route(self, item: _Item, exc: Exception, elapsed: float) -> None:
        p = self._p
        try:
            await route_failure(p._router, p._stats, item.record, exc, item.attempt)
        except RetryWriteError as write_error:
            self._rewind(item, write_error)
        self._done(item, elapsed, exc)

    def _all_handled(self, run: list[_Item], elapsed: float) -> None:
        """Every record of ``run`` was handled: count them and move the offset once."""
        p, n, last = self._p, len(run), run[-1].record
        p._stats.handled += n
        p._stats.processing_s += elapsed
        p._tally.add(last, elapsed, None, count=n)
        p._flow.done(self._tp, last, self._generation)
        self.done += n

    def _handled(self, item: _Item, elapsed: float) -> None:
        stats = self._p._stats
        stats.handled += 1
        stats.processing_s += elapsed
        self._done(item, elapsed, None)

    def _done(self, item: _Item, elapsed: float, failure: BaseException | None) -> None:
        self._p._tally.add(item.record, elapsed, failure)
        self._p._flow.done(self._tp, item.record, self._generation)
        self.done += 1

    def _rewind(self, item: _Item, exc: Exception) -> None:
        """Pause the partition at ``item`` with backoff; nothing after it is done now."""
        p = self._p
        p._tally.add(item.record, 0.0, exc)
        p._stats.rewinds += 1
        p._flow.back_off(self._tp, item.record, self._generation, str(exc))
        raise _Stop


__all__ = ["BatchFailure", "BatchHandler", "BatchProcessor"]
