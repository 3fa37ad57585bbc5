"""The one exception tree of tradesense-streaming.

Callers catch these types, never aiokafka's, asyncpg's or fastavro's: third-party
errors are translated at the boundary with ``raise ... from exc`` (Kafka in
:mod:`streaming.transport.kafka`, PostgreSQL only in :mod:`streaming.db`).

Every public error is drawn here. The root families are defined in this module; the
errors of a package stay in that package (module in brackets) because they carry its
types (a ``SerializationContext``, an HTTP status), and this module imports nothing at
run time. ``(R)`` marks ``retriable = True``: retrying the same call may succeed.

    StreamingError
    +-- ConfigError                      bad or non-compliant settings (lists every problem)
    +-- DevStackError                    the local stack cannot start (says how to fix it)
    +-- BadInputError                    [clients.bulk] a CLI input line cannot be sent
    +-- CommandFailed                    [cli._common] a command's own verdict and exit code
    +-- ConsumerError                    [clients.consumer] consumer misconfigured or misused
    |   +-- UnhandledEventError          no handler for the event type (dead-lettered)
    +-- TransientProcessingError (R)     [clients.consumer] cannot finish now; rewind
    +-- BatchFailure                     [clients.batch] a batch handler names its failed record
    +-- TransportError                   talking to Kafka failed
    |   +-- BrokerUnavailableError (R)   no broker answered
    |   +-- TransientTransportError (R)  Kafka says retry (leader moved, coordinator busy)
    |   +-- TopicError                   topic missing / cannot be created
    |   |   +-- RetryTopicNameError      [clients.retry] not a legal retry/DLQ topic name
    |   +-- TransactionError             transactional producer fenced or aborted
    |   |   +-- ConcurrentRunFencedError [replay.errors] a newer replay/redrive took over
    |   +-- GroupNotEmptyError           offsets of a group with members cannot change
    |   |   +-- GroupActiveError         [replay.errors] with the member count
    |   +-- CommitFencedError            a member that lost its generation may not commit
    |   +-- PartialSendError             some records of a batch were acknowledged, some not
    |   |   +-- RetriablePartialSendError (R)  ... and every failure was retriable
    |   +-- ProducerNotStartedError      [clients.producer] used before start()
    |   +-- RetryWriteError (R)          [clients.router] retry/DLQ write failed: no commit
    +-- DatabaseError                    talking to PostgreSQL failed
    |   +-- DatabaseUnavailableError (R) PostgreSQL cannot be reached
    |   |   +-- CircuitOpenError (R)     fail-fast while the breaker is open
    |   +-- DuplicateKeyError            a unique constraint refused the row
    |   +-- ChainFencedError             [connectors.audit_sink.writer] another sink owns it
    +-- SerializationError               (de)serialization; carries raw bytes and coordinates
    |   +-- SchemaLoadError              [serde.errors] a local .avsc is missing or invalid
    |   +-- SerializeError               [serde.errors] a value does not fit its schema
    |   +-- DeserializationError         [serde.errors] data, topic, partition, offset, id
    |   |   +-- BadMagicByteError        first byte is not 0: not Confluent wire format
    |   |   +-- CorruptRecordError       body does not decode, or bytes are left over
    |   |   |   +-- TruncatedRecordError shorter than the header, or the body ends early
    |   |   +-- UnknownSchemaIdError     the registry has no schema with this id
    |   |   +-- SchemaMismatchError      writer schema cannot be read as the reader's
    |   |   +-- SchemaLookupError (R)    the registry could not be asked (not poison)
    |   +-- FailureHeadersError          [clients.retry] retry/DLQ headers do not parse
    |   +-- CanonicalizationError        [audit.canonical] no canonical JSON (also ValueError)
    |   +-- RecordFormatError            [registry.records] a bad _schemas record (ValueError)
    |   +-- RegistryError                [serde.errors] status + Confluent error_code + body()
    |       +-- RegistryUnavailableError (R)  network, timeout, 408/429/5xx after retries
    |       |   +-- RegistryStoreError          500 50001   (server: StoreError)
    |       |   +-- RegistryStoreTimeoutError   500 50002   (server: StoreTimeout)
    |       |   +-- RegistryNotReadyError       503 50003
    |       |       +-- NotReady                [registry.errors] store reader is behind
    |       +-- RegistryAuthError               401 / 403
    |       +-- SubjectNotFoundError            404 40401
    |       |   +-- SubjectNotFound             [registry.errors] (each server subclass
    |       +-- VersionNotFoundError            404 40402  words Confluent's message)
    |       |   +-- VersionNotFound
    |       +-- SchemaNotFoundError             404 40403
    |       |   +-- SchemaNotFound
    |       +-- SubjectSoftDeletedError         404 40404
    |       |   +-- SubjectSoftDeleted
    |       +-- SubjectNotSoftDeletedError      404 40405
    |       |   +-- SubjectNotSoftDeleted
    |       +-- VersionSoftDeletedError         404 40406
    |       |   +-- VersionSoftDeleted
    |       +-- VersionNotSoftDeletedError      404 40407
    |       |   +-- VersionNotSoftDeleted
    |       +-- SubjectConfigNotFoundError      404 40408
    |       |   +-- SubjectConfigNotFound
    |       +-- SubjectModeNotFoundError        404 40409
    |       |   +-- SubjectModeNotFound
    |       +-- IncompatibleSchemaError         409 409
    |       |   +-- IncompatibleSchema
    |       +-- InvalidSchemaError              422 42201   (server: InvalidSchema)
    |       |   +-- SchemaWorkTimeout           parsing/checking exceeded the time limit
    |       +-- InvalidVersionError             422 42202
    |       |   +-- InvalidVersion
    |       +-- InvalidCompatibilityLevelError  422 42203
    |       |   +-- InvalidCompatibilityLevel
    |       +-- InvalidModeError                422 42204
    |       |   +-- InvalidMode
    |       +-- OperationNotPermittedError      422 42205   (server: OperationNotPermitted)
    |       +-- ReferenceExistsError            422 42206   (server: ReferenceExists)
    |       +-- InvalidSubjectError             422 42208
    |       |   +-- InvalidSubject
    |       +-- RequestError                    [registry.errors] plain HTTP status as code
    |           +-- BodyTimeout                 408, connection closed
    +-- SecurityError                    authentication / authorization failures
    |   +-- AuthenticationError          the caller's identity cannot be established
    |   |   +-- InvalidTokenError        [security.errors] a JWT failed a check (``reason``)
    |   |       +-- TokenRevokedError    its ``jti`` or family was revoked
    |   |       +-- RefreshTokenReuseError  a used refresh token came back (family revoked)
    |   +-- RevocationsUnavailableError (R)  [security.errors] revocation list not current
    |   +-- PermissionDenied             the caller is known but not allowed
    |   |   +-- AccessDenied             [security.errors] subject, resource, action (403)
    |   +-- HashingError                 [security.errors] a password hash cannot be checked
    |   |   +-- UnknownPepperError       names a pepper this server does not hold
    |   +-- DecryptionError              [security.errors] tampered or wrong key
    |       +-- UnknownKeyError          names a key id this server does not hold
    +-- ReplayError                      [replay.errors] a replay/reset/redrive cannot run
    |   +-- ResetPlanError               the reset request cannot be planned (bad input)
    |   +-- SnapshotNotFoundError        no snapshot with that group and name
    |   +-- IncompatibleRangeError       the reader schema cannot read some writer ids
    +-- BundleError                      [connectors.audit_sink.bundle] unreadable export

Every error carries ``correlation_id`` and ``operation`` from the execution context it
was created in (``None`` outside one).

``retriable`` is a class attribute, never set on an instance: where retriability
depends on the case, a retriable subclass is raised instead. The Confluent error codes
live once, on the registry classes (``streaming.serde.errors.ERROR_CODES`` maps them
back), for the registry service and the client alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the error tree imports nothing at run time
    from streaming.transport.base import RecordMetadata


class StreamingError(Exception):
    """Root of every error this package raises on purpose.

    An error created inside an :class:`~streaming.context.ExecutionContext` remembers its
    ``correlation_id`` and ``operation`` (``None`` outside one), so a handler far from
    the failure can still log and report which request it belongs to.
    """

    retriable: bool = False
    correlation_id: str | None
    operation: str | None

    def __new__(cls, *args: object, **kwargs: object) -> StreamingError:
        self = super().__new__(cls, *args)
        # imported here: the tree imports nothing at module load (context imports core)
        from streaming.context import current_execution_context

        ctx = current_execution_context()
        self.correlation_id = ctx.correlation_id if ctx else None
        self.operation = ctx.operation if ctx else None
        return self


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


class TransientTransportError(TransportError):
    """Kafka marked the failure retriable (a leader moved, a coordinator is loading)."""

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
    landed, ``None`` if it was not acknowledged (``errors[i]`` says why): resend those.
    Build it with :meth:`of`, which picks :class:`RetriablePartialSendError` when every
    failure was retriable."""

    def __init__(
        self,
        message: str,
        results: Sequence[RecordMetadata | None],
        errors: Mapping[int, TransportError],
    ) -> None:
        super().__init__(message)
        self.results = list(results)
        self.errors = dict(errors)

    @staticmethod
    def of(
        message: str,
        results: Sequence[RecordMetadata | None],
        errors: Mapping[int, TransportError],
    ) -> PartialSendError:
        """The partial-send error for ``errors``: retriable iff every failure is."""
        retriable = bool(errors) and all(e.retriable for e in errors.values())
        cls = RetriablePartialSendError if retriable else PartialSendError
        return cls(message, results, errors)


class RetriablePartialSendError(PartialSendError):
    """A partial send whose every failure was retriable: resending the rest may succeed."""

    retriable = True


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


class DuplicateKeyError(DatabaseError):
    """A unique constraint refused the row (it, or a racing writer's, is already stored)."""


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
    "DuplicateKeyError",
    "GroupNotEmptyError",
    "PartialSendError",
    "PermissionDenied",
    "RetriablePartialSendError",
    "SecurityError",
    "SerializationError",
    "StreamingError",
    "TopicError",
    "TransactionError",
    "TransientTransportError",
    "TransportError",
]
