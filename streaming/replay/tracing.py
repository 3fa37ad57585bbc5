"""Spans for records that replay tools move, so a moved record stays in its own trace.

A DLQ redrive reads records of many traces and writes them in one Kafka transaction, so
each record gets, as the messaging semantic conventions describe batch publishing:

- a ``redrive <dlq>`` CONSUMER span (``messaging.operation.type`` ``process``): a child
  of the context in the DLQ record's ``traceparent`` (the ``send <dlq>`` span of the
  retry router), linked to it;
- inside it a ``create <destination>`` PRODUCER span, the record's own creation context:
  it replaces the record's ``traceparent``, so the consumer's ``process`` span that
  handles the redriven record is its child, and the trace goes on where it stopped.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Tracer

from streaming.core.headers import H_EVENT_ID
from streaming.telemetry import (
    KAFKA,
    MESSAGING_DESTINATION_NAME,
    MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_KAFKA_OFFSET,
    MESSAGING_MESSAGE_ID,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_SYSTEM,
    extract_context,
    inject_headers,
    message_id,
)
from streaming.transport.base import OutgoingRecord, Record

STREAMING_REDRIVE_ID = "streaming.redrive.id"


def traced_move(
    tracer: Tracer, source: Record, moved: OutgoingRecord, *, operation: str, run_id: str
) -> OutgoingRecord:
    """``moved`` (built from ``source``) with the ``traceparent`` of its ``create`` span,
    under an ``<operation> <source topic>`` span continuing ``source``'s trace."""
    parent = extract_context(source.headers)
    upstream = trace.get_current_span(parent).get_span_context()
    links = [Link(upstream)] if upstream.is_valid else []
    common: dict[str, Any] = {MESSAGING_SYSTEM: KAFKA}
    event_id = message_id(source.header(H_EVENT_ID))
    if event_id is not None:
        common[MESSAGING_MESSAGE_ID] = event_id
    processing = {
        **common,
        MESSAGING_DESTINATION_NAME: source.topic,
        MESSAGING_DESTINATION_PARTITION_ID: str(source.partition),
        MESSAGING_KAFKA_OFFSET: source.offset,
        MESSAGING_OPERATION_TYPE: "process",
        MESSAGING_OPERATION_NAME: operation,
        STREAMING_REDRIVE_ID: run_id,
    }
    creating = {
        **common,
        MESSAGING_DESTINATION_NAME: moved.topic,
        MESSAGING_OPERATION_TYPE: "create",
        MESSAGING_OPERATION_NAME: "create",
    }
    with (
        tracer.start_as_current_span(
            f"{operation} {source.topic}",
            context=parent if links else None,
            kind=SpanKind.CONSUMER,
            links=links,
            attributes=processing,
        ),
        tracer.start_as_current_span(
            f"create {moved.topic}", kind=SpanKind.PRODUCER, attributes=creating
        ),
    ):
        headers = inject_headers(moved.headers)
    return OutgoingRecord(
        moved.topic, moved.value, moved.key, headers, moved.partition, moved.timestamp_ms
    )


__all__ = ["STREAMING_REDRIVE_ID", "traced_move"]
