"""What the event bus keeps of an event it gave up on: a typed view of one DLQ record."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from streaming.clients.retry import parse_failure_headers
from streaming.core.headers import H_CORRELATION_ID
from streaming.errors import SerializationError
from streaming.events import Event, EventDeserializer
from streaming.serde.context import SerializationContext
from streaming.transport.base import Record


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One event the bus gave up on: where it came from, why it failed, and the event
    (``None`` when it could not be decoded; ``raw`` has the bytes either way)."""

    event_type: str
    topic: str
    partition: int
    offset: int
    attempt: int
    exception_type: str
    exception_message: str
    failed_at: datetime
    correlation_id: str | None
    dlq_topic: str
    dlq_partition: int
    dlq_offset: int
    event: Event | None
    raw: bytes | None


def last_header(record: Record, name: str) -> str | None:
    """The newest value of header ``name`` as text (``None`` when absent)."""
    for key, value in reversed(record.headers):
        if key == name:
            return value.decode("utf-8", errors="replace")
    return None


async def dead_letter_of(
    record: Record, dlq: str, cls: type[Event], deserializer: EventDeserializer
) -> DeadLetter:
    """The :class:`DeadLetter` of DLQ ``record`` (of ``cls`` events, read from ``dlq``)."""
    info = parse_failure_headers(record.headers)
    event: Event | None = None
    if record.value is not None:
        with contextlib.suppress(SerializationError):
            event = await deserializer.deserialize(
                record.value, SerializationContext.for_record(record)
            )
    failed_ms = info.failed_at_ms if info else record.timestamp_ms
    return DeadLetter(
        event_type=cls.type_name(),
        topic=info.original_topic if info else record.topic,
        partition=info.original_partition if info else record.partition,
        offset=info.original_offset if info else record.offset,
        attempt=info.attempt if info else 0,
        exception_type=info.exception_type if info else "",
        exception_message=info.exception_message if info else "",
        failed_at=datetime.fromtimestamp(failed_ms / 1000, UTC),
        correlation_id=last_header(record, H_CORRELATION_ID),
        dlq_topic=dlq,
        dlq_partition=record.partition,
        dlq_offset=record.offset,
        event=event,
        raw=record.value,
    )


__all__ = ["DeadLetter", "dead_letter_of", "last_header"]
