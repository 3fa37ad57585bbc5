"""The consumer's processing chain: what flows through it and its built-in steps.

Every record becomes a :class:`Message` and runs through middlewares of the shape
``async (message, call_next)``. The consumer builds the chain
``trace -> route -> decode -> <the user's middlewares> -> dispatch``:

- :class:`TraceMiddleware` opens the ``process <topic>`` span (a child of the producer's);
- :class:`RouteMiddleware` turns a failure into a write to the retry topic or the DLQ and
  tallies every delivery (:class:`DeliveryTally`: ``messaging.client.consumed.messages``
  and process duration, reported per partition batch);
- :class:`DecodeMiddleware` decodes the value into an :class:`~streaming.events.Event`.

Two failures are not the record's fault and pass the router untouched, so the consumer
rewinds the partition instead of committing: :class:`TransientProcessingError` (e.g. the
registry is down) and :class:`~streaming.clients.router.RetryWriteError`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode, Tracer

from streaming.clients.router import RetryRouter, RetryWriteError
from streaming.core.headers import H_EVENT_ID
from streaming.errors import StreamingError
from streaming.events import Event, EventDeserializer
from streaming.serde.context import SerializationContext
from streaming.telemetry import (
    ERROR_TYPE,
    MessagingInstruments,
    error_type,
    message_id,
    metric_attributes,
    process_span,
)
from streaming.transport.base import Record


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


class TraceMiddleware:
    """Run the rest of the chain inside a ``process <topic>`` CONSUMER span."""

    __slots__ = ("_tracer",)

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    async def __call__(self, message: Message, call_next: CallNext) -> None:
        record = message.record
        with process_span(
            self._tracer,
            record,
            group=message.group,
            message_id=message_id(record.header(H_EVENT_ID)),
        ):
            await call_next(message)


class DeliveryTally:
    """Deliveries counted per partition batch, not per record: the SDK's ``add`` and
    ``record`` (attribute hashing, exemplars) cost more than the rest of a record.

    ``messaging.client.consumed.messages`` gets one ``add(n)`` per partition batch and
    outcome (``error.type``); ``messaging.process.duration`` one measurement per partition
    batch and outcome: the time the batch's records of that outcome took to process.
    """

    __slots__ = ("_group", "_instruments", "_open")

    def __init__(self, instruments: MessagingInstruments, group: str) -> None:
        self._instruments = instruments
        self._group = group
        # (topic, partition) -> error type (None: success) -> [count, seconds]
        self._open: dict[tuple[str, int], dict[type[BaseException] | None, list[Any]]] = {}

    def add(
        self, record: Record, elapsed_s: float, failure: BaseException | None, count: int = 1
    ) -> None:
        """``count`` deliveries of ``record``'s partition that took ``elapsed_s`` in all."""
        key = (record.topic, record.partition)
        outcomes = self._open.get(key)
        if outcomes is None:
            outcomes = self._open[key] = {}
        kind = type(failure) if failure is not None else None
        slot = outcomes.get(kind)
        if slot is None:
            outcomes[kind] = [count, elapsed_s, failure]
        else:
            slot[0] += count
            slot[1] += elapsed_s

    def flush(self, topic: str, partition: int) -> None:
        """Report what one partition's batch delivered (call once it is processed)."""
        outcomes = self._open.pop((topic, partition), None)
        if not outcomes:
            return
        for count, seconds, failure in outcomes.values():
            attributes = metric_attributes(
                topic, operation="process", partition=partition, group=self._group, error=failure
            )
            self._instruments.consumed.add(count, attributes)
            self._instruments.process_duration.record(seconds, attributes)


class RouteMiddleware:
    """Send a record whose processing failed to its retry topic or the DLQ (then it
    counts as done), and tally every delivery as the messaging conventions count it."""

    __slots__ = ("_router", "_stats", "_tally")

    def __init__(self, router: RetryRouter, stats: ConsumerStats, tally: DeliveryTally) -> None:
        self._router = router
        self._stats = stats
        self._tally = tally

    async def __call__(self, message: Message, call_next: CallNext) -> None:
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            await call_next(message)
        except (TransientProcessingError, RetryWriteError) as exc:
            failure = exc
            raise
        except Exception as exc:
            failure = exc
            await self._route(message, exc)
            return
        finally:
            elapsed = time.perf_counter() - started
            self._tally.add(message.record, elapsed, failure)
        self._stats.processing_s += elapsed

    async def _route(self, message: Message, exc: Exception) -> None:
        span = trace.get_current_span()
        span.set_attribute(ERROR_TYPE, error_type(exc))
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
        await route_failure(self._router, self._stats, message.record, exc, message.attempt)


async def route_failure(
    router: RetryRouter, stats: ConsumerStats, record: Record, exc: Exception, attempt: int
) -> None:
    """Send ``record`` (attempt ``attempt`` failed with ``exc``) to retry or the DLQ."""
    stats.failed += 1
    # An unhandled type will not get a handler by retrying: straight to the DLQ.
    if isinstance(exc, UnhandledEventError):
        attempt = router.policy.attempts
    meta = await router.route(record, exc, attempt)
    if meta.topic.endswith(".dlq"):
        stats.dead_lettered += 1
    else:
        stats.retried += 1


class DecodeMiddleware:
    """Decode the record's value; a tombstone is skipped, a decoder that cannot work now
    (``retriable``, e.g. the registry is unreachable) rewinds instead of dead-lettering."""

    __slots__ = ("_deserializer", "_stats")

    def __init__(self, deserializer: EventDeserializer, stats: ConsumerStats) -> None:
        self._deserializer = deserializer
        self._stats = stats

    async def __call__(self, message: Message, call_next: CallNext) -> None:
        event = await self.decode(message.record)
        if event is not None:
            await call_next(Message(message.record, message.group, message.attempt, event))

    async def decode(self, record: Record) -> Event | None:
        """The record's event; ``None`` for a tombstone (counted as skipped)."""
        if record.value is None:
            self._stats.skipped += 1
            return None
        try:
            return await self._deserializer.deserialize(
                record.value, SerializationContext.for_record(record)
            )
        except StreamingError as exc:
            if exc.retriable:  # not poison: rewind
                raise TransientProcessingError(f"cannot decode now: {exc}") from exc
            raise


__all__ = [
    "CallNext",
    "ConsumerError",
    "ConsumerStats",
    "DecodeMiddleware",
    "DeliveryTally",
    "Handler",
    "Message",
    "Middleware",
    "RouteMiddleware",
    "TraceMiddleware",
    "TransientProcessingError",
    "UnhandledEventError",
    "route_failure",
]
