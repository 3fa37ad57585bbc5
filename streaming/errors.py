"""The one exception tree of tradesense-streaming.

Callers catch these types, never aiokafka's, asyncpg's or fastavro's: third-party
errors are translated at the boundary with ``raise ... from exc``.

    StreamingError
    +-- ConfigError                 bad or non-compliant settings (lists every problem)
    +-- DevStackError               the local stack cannot start (says how to fix it)
    +-- TransportError              talking to Kafka failed
    |   +-- BrokerUnavailableError  no broker answered (retriable)
    |   +-- TopicError              topic missing / cannot be created
    |   +-- TransactionError        transactional producer fenced or aborted
    |   +-- GroupNotEmptyError      offsets of a group with active members cannot change
    |   +-- CommitFencedError       a member that lost its generation may not commit
    |   +-- PartialSendError        some records of a batch were acknowledged, some not
    +-- DatabaseError               talking to PostgreSQL failed
    |   +-- DatabaseUnavailableError
    |   +-- CircuitOpenError        fail-fast while the breaker is open (retriable)
    +-- SerializationError          (de)serialization; carries raw bytes and coordinates
    +-- SecurityError               authentication / authorization failures
        +-- AuthenticationError
        +-- PermissionDenied

Each error says whether retrying the same call may succeed (``retriable``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the error tree imports nothing at run time
    from streaming.transport.base import RecordMetadata


class StreamingError(Exception):
    """Root of every error this package raises on purpose."""

    retriable: bool = False


class ConfigError(StreamingError):
    """Settings are invalid; ``problems`` holds one line per violated rule."""

    def __init__(self, problems: Iterable[str], *, title: str = "invalid configuration") -> None:
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            super().__init__(f"{title}: {self.problems[0]}")
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            super().__init__(f"{title} ({len(self.problems)} problems):\n{lines}")


class DevStackError(StreamingError):
    """The local development stack cannot do what was asked; the message says how to fix it."""


class TransportError(StreamingError):
    """A Kafka operation failed."""


class BrokerUnavailableError(TransportError):
    """No Kafka broker answered in time."""

    retriable = True


class TopicError(TransportError):
    """A topic is missing, misconfigured or could not be created."""


class GroupNotEmptyError(TransportError):
    """A consumer group still has active members, so its offsets cannot be changed."""


class CommitFencedError(TransportError):
    """This consumer lost its group generation (its partitions went to another member),
    so committing the offsets it computed before could rewind the group: refused."""


class PartialSendError(TransportError):
    """A batch send failed for some partitions only. ``results[i]`` is where record ``i``
    landed, ``None`` if it was not acknowledged (``errors[i]`` says why): resend those."""

    def __init__(
        self,
        message: str,
        results: Sequence[RecordMetadata | None],
        errors: Mapping[int, TransportError],
    ) -> None:
        super().__init__(message)
        self.results = list(results)
        self.errors = dict(errors)
        self.retriable = all(e.retriable for e in self.errors.values())


class TransactionError(TransportError):
    """A transactional producer was fenced or its transaction aborted."""


class DatabaseError(StreamingError):
    """A PostgreSQL operation failed."""


class DatabaseUnavailableError(DatabaseError):
    """PostgreSQL could not be reached."""

    retriable = True


class CircuitOpenError(DatabaseUnavailableError):
    """The circuit breaker is open: calls fail fast until the cooldown ends."""

    def __init__(self, name: str, retry_in_s: float) -> None:
        self.name = name
        self.retry_in_s = retry_in_s
        super().__init__(
            f"circuit '{name}' is open after repeated connection failures; "
            f"next probe in {retry_in_s:.1f}s"
        )


class SerializationError(StreamingError):
    """A record could not be (de)serialized; subclasses carry what a DLQ needs."""


class SecurityError(StreamingError):
    """Authentication or authorization failed."""


class AuthenticationError(SecurityError):
    """The caller's identity could not be established (bad or expired credentials)."""


class PermissionDenied(SecurityError):
    """The caller is known but not allowed to do this."""


__all__ = [
    "AuthenticationError",
    "BrokerUnavailableError",
    "CircuitOpenError",
    "CommitFencedError",
    "ConfigError",
    "DatabaseError",
    "DatabaseUnavailableError",
    "DevStackError",
    "GroupNotEmptyError",
    "PartialSendError",
    "PermissionDenied",
    "SecurityError",
    "SerializationError",
    "StreamingError",
    "TopicError",
    "TransactionError",
    "TransportError",
]
