"""The I/O side of retries: write a failed record to its retry or dead-letter topic.

:mod:`streaming.retry` decides (policy, names, headers); this module sends. A record is
re-produced with its original key, value and headers plus the diagnostic ``x-*``
headers, to the same partition number it came from, under a ``send <topic>`` span that
is a child of the current ``process`` span and links to the original producer's
context; ``traceparent`` is replaced, never appended. If the write fails,
:class:`RetryWriteError` tells the consumer not to commit (it backs off and tries again).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import structlog
from opentelemetry import trace
from opentelemetry.trace import Tracer

from streaming.errors import StreamingError, TransportError
from streaming.producer import H_EVENT_ID
from streaming.retry import (
    RetryPolicy,
    Route,
    dlq_topic,
    failure_headers,
    failure_info,
    retry_topic,
)
from streaming.telemetry import (
    INSTRUMENTATION_NAME,
    MessagingInstruments,
    global_instruments,
    inject_headers,
    links_to,
    message_id,
    metric_attributes,
    record_sent,
    send_span,
)
from streaming.transport.base import OutgoingRecord, ProducerTransport, Record, RecordMetadata

log = structlog.get_logger(__name__)


class RetryWriteError(TransportError):
    """Writing a failed record to its retry/DLQ topic failed: do not commit its offset."""

    retriable = True


class RetryRouter:
    """Routes failed records of one consumer group to ``<topic>.<group>.retry.<n>`` or DLQ."""

    def __init__(
        self,
        producer: ProducerTransport,
        *,
        group: str,
        policy: RetryPolicy,
        tracer: Tracer | None = None,
        instruments: MessagingInstruments | None = None,
        clock_ms: Callable[[], int] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._producer = producer
        self.group = group
        self.policy = policy
        self._tracer = tracer or trace.get_tracer(INSTRUMENTATION_NAME)
        self._instruments = instruments or global_instruments()
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._rng = rng or random.Random()

    async def route(self, record: Record, exc: BaseException, attempt: int) -> RecordMetadata:
        """Write ``record`` to its next topic; raise :class:`RetryWriteError` if that fails."""
        now = self._clock_ms()
        route = self.policy.route(exc, attempt)
        not_before = (
            self.policy.not_before_ms(attempt + 1, now, self._rng) if route is Route.RETRY else None
        )
        info = failure_info(
            record, exc, group=self.group, attempt=attempt, now_ms=now, not_before_ms=not_before
        )
        target = (
            retry_topic(info.original_topic, self.group, attempt)
            if route is Route.RETRY
            else dlq_topic(info.original_topic, self.group)
        )
        headers = failure_headers(info, base=record.headers)
        with send_span(
            self._tracer,
            target,
            key=record.key,
            value=record.value,
            message_id=message_id(record.header(H_EVENT_ID)),
            partition=info.original_partition,
            links=links_to(record.headers),
        ) as span:
            outgoing = OutgoingRecord(
                target, record.value, record.key, inject_headers(headers), info.original_partition
            )
            try:
                meta = await self._producer.send(outgoing)
            except StreamingError as exc_write:
                raise RetryWriteError(
                    f"could not write {record.topic}[{record.partition}]@{record.offset} to "
                    f"{target}: {exc_write}; the offset stays uncommitted and the write is retried"
                ) from exc_write
            record_sent(span, meta)
        counter = (
            self._instruments.retried if route is Route.RETRY else self._instruments.dead_lettered
        )
        counter.add(
            1, metric_attributes(info.original_topic, operation="send", group=self.group, error=exc)
        )
        log.info(
            "record routed",
            route=str(route),
            target=target,
            source=f"{record.topic}[{record.partition}]@{record.offset}",
            attempt=attempt,
            exception_type=info.exception_type,
            not_before_ms=not_before,
        )
        return meta


__all__ = ["RetryRouter", "RetryWriteError"]
