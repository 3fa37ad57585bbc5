"""Everything an :class:`~streaming.clients.consumer.EventConsumer` is configured with.

One frozen :class:`ConsumerOptions`, and :class:`ConsumerKeywords`, the same fields as
keyword arguments of the consumer (a test keeps the two in step).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypedDict

from opentelemetry.trace import Tracer

from streaming.clients.producer import TopicGuard
from streaming.clients.retry import RetryPolicy
from streaming.clients.topics import TopicDefaults
from streaming.core.clock import now_ms
from streaming.errors import ConfigError
from streaming.events import EVENT_TYPES, EventTypes
from streaming.privacy.reveal import FieldRevealer
from streaming.serde.catalog import SchemaCatalog
from streaming.telemetry import MessagingInstruments
from streaming.transport.base import IsolationLevel


@dataclass(frozen=True, slots=True)
class ConsumerOptions:
    """Everything an :class:`EventConsumer` is configured with, checked once.

    ``tracer``/``instruments`` default to the global providers' when the consumer is
    built; ``clock_ms`` and ``rng`` are there for tests.
    """

    topics: Sequence[str]
    group_id: str
    retry_policy: RetryPolicy | None = None
    event_types: EventTypes = field(default_factory=lambda: EVENT_TYPES)  # the shared one
    catalog: SchemaCatalog | None = None
    tracer: Tracer | None = None
    instruments: MessagingInstruments | None = None
    guard: TopicGuard | None = None
    create_failure_topics: bool = True
    topic_defaults: TopicDefaults | None = None
    unhandled: Literal["skip", "dlq"] = "skip"
    max_poll_records: int = 500
    poll_timeout_ms: int = 500
    session_timeout_ms: int = 10_000
    auto_offset_reset: str = "earliest"
    isolation_level: IsolationLevel = "read_committed"
    backoff_s: tuple[float, float] = (0.1, 5.0)
    clock_ms: Callable[[], int] = now_ms
    rng: random.Random | None = None
    lag_interval_s: float = 5.0
    privacy: FieldRevealer | None = None  # default: from SECURITY_PII_KEK
    # gc.freeze() the startup objects and raise the young threshold (streaming.core.heap).
    tune_gc_on_start: bool = True

    def __post_init__(self) -> None:
        if not self.topics:
            raise ConfigError(["EventConsumer needs at least one topic"])
        object.__setattr__(self, "topics", tuple(self.topics))


class ConsumerKeywords(TypedDict, total=False):
    """:class:`ConsumerOptions` fields as keywords of :class:`EventConsumer` (a test keeps
    the two in step)."""

    topics: Sequence[str]
    group_id: str
    retry_policy: RetryPolicy | None
    event_types: EventTypes
    catalog: SchemaCatalog | None
    tracer: Tracer | None
    instruments: MessagingInstruments | None
    guard: TopicGuard | None
    create_failure_topics: bool
    topic_defaults: TopicDefaults | None
    unhandled: Literal["skip", "dlq"]
    max_poll_records: int
    poll_timeout_ms: int
    session_timeout_ms: int
    auto_offset_reset: str
    isolation_level: IsolationLevel
    backoff_s: tuple[float, float]
    clock_ms: Callable[[], int]
    rng: random.Random | None
    lag_interval_s: float
    privacy: FieldRevealer | None
    tune_gc_on_start: bool


__all__ = ["ConsumerKeywords", "ConsumerOptions"]
