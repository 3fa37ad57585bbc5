"""Every header name the package writes or reads, in one place.

Kafka record headers are the contract between producers, consumers, the retry router,
redrive and replay (DESIGN.md, "Headers"); tools and other languages read them too, so
a name is spelt once here and imported everywhere. Values are UTF-8 text (numbers in
decimal) unless said otherwise.
"""

from __future__ import annotations

# -- stamped on every event by the producer (and the outbox relay)
H_EVENT_ID = "event-id"
H_EVENT_TYPE = "event-type"
H_CORRELATION_ID = "correlation-id"
H_CONTENT_TYPE = "content-type"
H_PRODUCED_AT = "produced-at"
EVENT_HEADERS = (H_EVENT_ID, H_EVENT_TYPE, H_CORRELATION_ID, H_CONTENT_TYPE, H_PRODUCED_AT)
CONTENT_TYPE_AVRO = "application/vnd.kafka.avro.v1"
"""The ``content-type`` value of Confluent-framed Avro records."""

# -- W3C trace context (replaced on re-produce, never appended)
H_TRACEPARENT = "traceparent"
H_TRACESTATE = "tracestate"
TRACE_HEADERS = (H_TRACEPARENT, H_TRACESTATE)

# -- diagnostics of a failed record on a retry or DLQ topic
H_ORIGINAL_TOPIC = "x-original-topic"
H_ORIGINAL_PARTITION = "x-original-partition"
H_ORIGINAL_OFFSET = "x-original-offset"
H_ORIGINAL_TIMESTAMP = "x-original-timestamp"
H_ATTEMPT = "x-attempt"
H_NOT_BEFORE = "x-not-before"
H_CONSUMER_GROUP = "x-consumer-group"
H_EXCEPTION_TYPE = "x-exception-type"
H_EXCEPTION_MESSAGE = "x-exception-message"
H_EXCEPTION_STACK = "x-exception-stack"
H_FAILED_AT = "x-failed-at"
FAILURE_HEADERS = (
    H_ORIGINAL_TOPIC,
    H_ORIGINAL_PARTITION,
    H_ORIGINAL_OFFSET,
    H_ORIGINAL_TIMESTAMP,
    H_ATTEMPT,
    H_NOT_BEFORE,
    H_CONSUMER_GROUP,
    H_EXCEPTION_TYPE,
    H_EXCEPTION_MESSAGE,
    H_EXCEPTION_STACK,
    H_FAILED_AT,
)

# -- added by a DLQ redrive (and by parking)
H_REDRIVE_ID = "x-redrive-id"
H_REDRIVE_COUNT = "x-redrive-count"
H_PARKED_AT = "x-parked-at"
REDRIVE_HEADERS = (H_REDRIVE_ID, H_REDRIVE_COUNT, H_PARKED_AT)

# -- added by a range replay
H_REPLAY_ID = "x-replay-id"
H_REPLAY_ORIGIN = "x-replay-origin"
REPLAY_HEADERS = (H_REPLAY_ID, H_REPLAY_ORIGIN)

# -- HTTP: an incoming request's correlation id (``correlation-id`` is accepted too), the
# request id proxies set when the caller sent none, and the proxy chain's client address
HTTP_CORRELATION_ID = "x-correlation-id"
HTTP_REQUEST_ID = "x-request-id"
HTTP_FORWARDED_FOR = "x-forwarded-for"
REQUEST_HEADERS = (HTTP_CORRELATION_ID, HTTP_REQUEST_ID, HTTP_FORWARDED_FOR)

__all__ = [
    "CONTENT_TYPE_AVRO",
    "EVENT_HEADERS",
    "FAILURE_HEADERS",
    "HTTP_CORRELATION_ID",
    "HTTP_FORWARDED_FOR",
    "HTTP_REQUEST_ID",
    "H_ATTEMPT",
    "H_CONSUMER_GROUP",
    "H_CONTENT_TYPE",
    "H_CORRELATION_ID",
    "H_EVENT_ID",
    "H_EVENT_TYPE",
    "H_EXCEPTION_MESSAGE",
    "H_EXCEPTION_STACK",
    "H_EXCEPTION_TYPE",
    "H_FAILED_AT",
    "H_NOT_BEFORE",
    "H_ORIGINAL_OFFSET",
    "H_ORIGINAL_PARTITION",
    "H_ORIGINAL_TIMESTAMP",
    "H_ORIGINAL_TOPIC",
    "H_PARKED_AT",
    "H_PRODUCED_AT",
    "H_REDRIVE_COUNT",
    "H_REDRIVE_ID",
    "H_REPLAY_ID",
    "H_REPLAY_ORIGIN",
    "H_TRACEPARENT",
    "H_TRACESTATE",
    "REDRIVE_HEADERS",
    "REPLAY_HEADERS",
    "REQUEST_HEADERS",
    "TRACE_HEADERS",
]
