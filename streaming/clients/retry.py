"""Retry and dead-letter policy: topic naming, classification, backoff and diagnostic headers.

This module is the pure core (no I/O): the consumer asks :class:`RetryPolicy` where a
failed record goes and when it may run again, builds the record's headers with
:func:`failure_headers`, and reads them back with :func:`parse_failure_headers`.

Attempts are counted from 1: attempt 1 is the delivery from the main topic, attempt
``n + 1`` is the delivery from ``<topic>.<group>.retry.<n>``. A policy with
``attempts=3`` therefore uses two retry topics before the DLQ. ``x-attempt`` holds the
attempt that failed, so when attempt ``a`` fails with ``exc``::

    if policy.route(exc, a) is Route.RETRY:
        target = retry_topic(topic, group, level=a)
        not_before = policy.not_before_ms(a + 1, now_ms, rng)
    else:
        target, not_before = dlq_topic(topic, group), None
    info = failure_info(record, exc, group=group, attempt=a, now_ms=now_ms,
                        not_before_ms=not_before)
    headers = failure_headers(info, base=record.headers)
"""

from __future__ import annotations

import enum
import random
import re
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from streaming.config import MessagingSettings
from streaming.errors import ConfigError, SerializationError, StreamingError, TopicError
from streaming.transport.base import Headers, Record

MAX_STACK_BYTES = 8 * 1024
MAX_MESSAGE_BYTES = 1024
_TOPIC_CHARS = re.compile(r"^[A-Za-z0-9._-]+$")
_MAX_TOPIC_LENGTH = 249
_TRUNCATED = "...[truncated]\n"

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


class RetryTopicNameError(TopicError):
    """A retry/DLQ topic name would not be a legal Kafka topic name."""


class FailureHeadersError(SerializationError):
    """A retry/DLQ record carries diagnostic headers that cannot be parsed."""


# --------------------------------------------------------------------------- topic naming


def _checked(name: str) -> str:
    if len(name) > _MAX_TOPIC_LENGTH or not _TOPIC_CHARS.match(name):
        raise RetryTopicNameError(
            f"{name!r} is not a legal Kafka topic name (use letters, digits, '.', '_', '-' "
            f"and at most {_MAX_TOPIC_LENGTH} characters); rename the topic or consumer group"
        )
    return name


def retry_topic(topic: str, group: str, level: int) -> str:
    """``<topic>.<group>.retry.<level>``; level 1 holds attempt 2."""
    if level < 1:
        raise ValueError(f"retry level must be >= 1, got {level}")
    return _checked(f"{topic}.{group}.retry.{level}")


def dlq_topic(topic: str, group: str) -> str:
    """``<topic>.<group>.dlq``: records that exhausted their attempts or failed fatally."""
    return _checked(f"{topic}.{group}.dlq")


def parking_topic(topic: str, group: str) -> str:
    """``<topic>.<group>.parking``: records a redrive gave up on, kept for humans."""
    return _checked(f"{topic}.{group}.parking")


# --------------------------------------------------------------------------- policy


class Route(enum.StrEnum):
    """Where a failed record goes next."""

    RETRY = "retry"
    DLQ = "dlq"


DEFAULT_FATAL: tuple[type[BaseException], ...] = (SerializationError, ValidationError, TypeError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how late a failed record is retried, and which failures never are.

    ``attempts`` counts every delivery including the first. ``delays_s[n - 1]`` is the
    delay before retry level ``n`` (the last delay repeats if there are more levels).
    ``jitter`` adds up to that fraction of the delay, never subtracts, so the configured
    delay is a floor. An exception that is an instance of a ``fatal`` type goes straight
    to the DLQ even if it also matches ``retryable``, unless it is a ``retriable``
    :class:`~streaming.errors.StreamingError` (see :meth:`is_fatal`).
    """

    attempts: int = 3
    delays_s: tuple[float, ...] = (1.0, 10.0)
    jitter: float = 0.1
    retryable: tuple[type[BaseException], ...] = (Exception,)
    fatal: tuple[type[BaseException], ...] = field(default=DEFAULT_FATAL)

    def __post_init__(self) -> None:
        problems = []
        if self.attempts < 1:
            problems.append(f"attempts must be >= 1, got {self.attempts}")
        if self.attempts > 1 and not self.delays_s:
            problems.append("delays_s needs at least one delay when attempts > 1")
        if any(d < 0 for d in self.delays_s):
            problems.append(f"delays_s must not be negative, got {self.delays_s}")
        if not 0 <= self.jitter <= 1:
            problems.append(f"jitter must be within 0..1, got {self.jitter}")
        if problems:
            raise ConfigError(problems, title="invalid retry policy")

    @classmethod
    def from_settings(cls, settings: MessagingSettings) -> RetryPolicy:
        """``MESSAGING_RETRY_ATTEMPTS`` counts retries (one per delay), so one is added."""
        return cls(
            attempts=settings.retry_attempts + 1,
            delays_s=settings.retry_delays_s,
            jitter=settings.retry_jitter,
        )

    @property
    def retry_levels(self) -> int:
        """How many retry topics this policy uses."""
        return self.attempts - 1

    def is_fatal(self, exc: BaseException) -> bool:
        """Never retried: a ``fatal`` type or not ``retryable``, unless the error itself says
        a retry can succeed (``retriable``: e.g. a registry lookup, a ``SerializationError``
        that is not poison). ``retriable=False`` keeps the type rules: the tree's default is
        "not known to be retriable", not "certainly permanent"."""
        if not isinstance(exc, self.retryable):
            return True
        if isinstance(exc, StreamingError) and exc.retriable:
            return False
        return isinstance(exc, self.fatal)

    def route(self, exc: BaseException, attempt: int) -> Route:
        """Where a record whose ``attempt`` just failed with ``exc`` goes."""
        if self.is_fatal(exc) or attempt >= self.attempts:
            return Route.DLQ
        return Route.RETRY

    def delay_s(self, attempt: int) -> float:
        """The configured (jitter-free) delay before ``attempt`` (>= 2) may run."""
        if attempt < 2:
            raise ValueError(f"only retries (attempt >= 2) are delayed, got {attempt}")
        return self.delays_s[min(attempt - 2, len(self.delays_s) - 1)]

    def not_before_ms(self, attempt: int, now_ms: int, rng: random.Random) -> int:
        """Epoch ms before which ``attempt`` must not run: now + delay + up to jitter."""
        delay_ms = self.delay_s(attempt) * 1000
        return now_ms + int(delay_ms * (1 + self.jitter * rng.random()))

    def topics(self, topic: str, group: str) -> list[str]:
        """Every failure topic this policy needs for ``topic`` consumed by ``group``."""
        retries = [retry_topic(topic, group, n) for n in range(1, self.attempts)]
        return [*retries, dlq_topic(topic, group)]


# --------------------------------------------------------------------------- headers


@dataclass(frozen=True, slots=True)
class FailureInfo:
    """The diagnostic headers of a retry/DLQ record, parsed."""

    original_topic: str
    original_partition: int
    original_offset: int
    original_timestamp_ms: int
    attempt: int
    consumer_group: str
    exception_type: str
    exception_message: str
    exception_stack: str
    failed_at_ms: int
    not_before_ms: int | None = None


def _utf8_bounded(text: str, limit: int, *, keep_tail: bool) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    marker = _TRUNCATED.encode()
    room = limit - len(marker)
    if keep_tail:
        return _TRUNCATED + data[-room:].decode("utf-8", errors="ignore")
    return data[:room].decode("utf-8", errors="ignore") + _TRUNCATED


def exception_type_name(exc: BaseException) -> str:
    """``module.QualName`` of the exception's class (builtins stay bare, e.g. ``KeyError``)."""
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def failure_info(
    record: Record,
    exc: BaseException,
    *,
    group: str,
    attempt: int,
    now_ms: int,
    not_before_ms: int | None = None,
) -> FailureInfo:
    """Describe attempt ``attempt`` of ``record`` failing; retried records keep the original
    topic, partition, offset and timestamp."""
    previous = parse_failure_headers(record.headers)
    stack = "".join(traceback.format_exception(exc))
    return FailureInfo(
        original_topic=previous.original_topic if previous else record.topic,
        original_partition=previous.original_partition if previous else record.partition,
        original_offset=previous.original_offset if previous else record.offset,
        original_timestamp_ms=previous.original_timestamp_ms if previous else record.timestamp_ms,
        attempt=attempt,
        consumer_group=group,
        exception_type=exception_type_name(exc),
        exception_message=_utf8_bounded(str(exc), MAX_MESSAGE_BYTES, keep_tail=False),
        exception_stack=_utf8_bounded(stack, MAX_STACK_BYTES, keep_tail=True),
        failed_at_ms=now_ms,
        not_before_ms=not_before_ms,
    )


def failure_headers(info: FailureInfo, base: Headers = ()) -> Headers:
    """``base`` without any earlier ``x-*`` failure headers, plus those of ``info``.

    Values are UTF-8 text (numbers in decimal) so any tool can read them.
    """
    kept = tuple((k, v) for k, v in base if k not in FAILURE_HEADERS)
    fields: list[tuple[str, str]] = [
        (H_ORIGINAL_TOPIC, info.original_topic),
        (H_ORIGINAL_PARTITION, str(info.original_partition)),
        (H_ORIGINAL_OFFSET, str(info.original_offset)),
        (H_ORIGINAL_TIMESTAMP, str(info.original_timestamp_ms)),
        (H_ATTEMPT, str(info.attempt)),
        (H_CONSUMER_GROUP, info.consumer_group),
        (H_EXCEPTION_TYPE, info.exception_type),
        (H_EXCEPTION_MESSAGE, info.exception_message),
        (H_EXCEPTION_STACK, info.exception_stack),
        (H_FAILED_AT, str(info.failed_at_ms)),
    ]
    if info.not_before_ms is not None:
        fields.append((H_NOT_BEFORE, str(info.not_before_ms)))
    return kept + tuple((k, v.encode("utf-8")) for k, v in fields)


def parse_failure_headers(headers: Iterable[tuple[str, bytes]]) -> FailureInfo | None:
    """The :class:`FailureInfo` in ``headers``; ``None`` for a record that never failed."""
    values: dict[str, str] = {}
    for key, raw in headers:
        if key in FAILURE_HEADERS:
            values[key] = raw.decode("utf-8", errors="replace")  # the newest value wins
    if H_ORIGINAL_TOPIC not in values:
        return None

    def number(name: str) -> int:
        try:
            return int(values[name])
        except (KeyError, ValueError) as exc:
            raise FailureHeadersError(
                f"header {name!r} is missing or not an integer: {values.get(name)!r}"
            ) from exc

    not_before = number(H_NOT_BEFORE) if H_NOT_BEFORE in values else None
    return FailureInfo(
        original_topic=values[H_ORIGINAL_TOPIC],
        original_partition=number(H_ORIGINAL_PARTITION),
        original_offset=number(H_ORIGINAL_OFFSET),
        original_timestamp_ms=number(H_ORIGINAL_TIMESTAMP),
        attempt=number(H_ATTEMPT),
        consumer_group=values.get(H_CONSUMER_GROUP, ""),
        exception_type=values.get(H_EXCEPTION_TYPE, ""),
        exception_message=values.get(H_EXCEPTION_MESSAGE, ""),
        exception_stack=values.get(H_EXCEPTION_STACK, ""),
        failed_at_ms=number(H_FAILED_AT),
        not_before_ms=not_before,
    )


def attempt_of(headers: Sequence[tuple[str, bytes]]) -> int:
    """The attempt a consumed record is delivered as: 1, or the failed attempt + 1."""
    info = parse_failure_headers(headers)
    return info.attempt + 1 if info is not None else 1


__all__ = [
    "DEFAULT_FATAL",
    "FAILURE_HEADERS",
    "MAX_STACK_BYTES",
    "FailureHeadersError",
    "FailureInfo",
    "RetryPolicy",
    "RetryTopicNameError",
    "Route",
    "attempt_of",
    "dlq_topic",
    "exception_type_name",
    "failure_headers",
    "failure_info",
    "parking_topic",
    "retry_topic",
]
