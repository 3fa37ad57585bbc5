"""Errors of the serde layer and the one registry error family (client and service).

All are under :class:`streaming.errors.SerializationError` and drawn in
:mod:`streaming.errors`. Every ``DeserializationError`` except ``SchemaLookupError`` is
a poison pill: retrying the same bytes cannot succeed, so the consumer routes it to the
DLQ with ``data`` intact. Each ``RegistryError`` subclass carries its HTTP ``status`` and
Confluent ``error_code``; :data:`ERROR_CODES` maps codes back to classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from streaming.errors import SerializationError
from streaming.serde.context import MessageField, SerializationContext
from streaming.transport.base import Headers


class SchemaLoadError(SerializationError):
    """A local schema file is missing, unreadable or not valid Avro."""


class SerializeError(SerializationError):
    """A value could not be encoded with its writer schema."""

    def __init__(
        self,
        message: str,
        *,
        ctx: SerializationContext | None = None,
        subject: str | None = None,
        schema_id: int | None = None,
    ) -> None:
        self.ctx = ctx
        self.subject = subject
        self.schema_id = schema_id
        where = f" (topic {ctx.topic!r} {ctx.field})" if ctx is not None else ""
        super().__init__(f"{message}{where}")


class DeserializationError(SerializationError):
    """Bytes could not be decoded; holds everything a DLQ router needs."""

    def __init__(
        self,
        message: str,
        *,
        data: bytes | None,
        ctx: SerializationContext | None = None,
        schema_id: int | None = None,
    ) -> None:
        self.data = data
        self.ctx = ctx
        self.schema_id = schema_id
        super().__init__(message + _where(ctx, schema_id))

    @property
    def topic(self) -> str | None:
        return self.ctx.topic if self.ctx is not None else None

    @property
    def partition(self) -> int | None:
        return self.ctx.partition if self.ctx is not None else None

    @property
    def offset(self) -> int | None:
        return self.ctx.offset if self.ctx is not None else None

    @property
    def field(self) -> MessageField | None:
        return self.ctx.field if self.ctx is not None else None

    @property
    def headers(self) -> Headers:
        return self.ctx.headers if self.ctx is not None else ()

    @property
    def cause(self) -> BaseException | None:
        """The underlying library error (also chained as ``__cause__``)."""
        return self.__cause__


def _where(ctx: SerializationContext | None, schema_id: int | None) -> str:
    parts = []
    if ctx is not None:
        parts.append(f"topic {ctx.topic!r} {ctx.field}")
        if ctx.partition is not None:
            parts.append(f"partition {ctx.partition}")
        if ctx.offset is not None:
            parts.append(f"offset {ctx.offset}")
    if schema_id is not None:
        parts.append(f"schema id {schema_id}")
    return f" ({', '.join(parts)})" if parts else ""


class BadMagicByteError(DeserializationError):
    """The record does not start with magic byte 0 (not Confluent wire format)."""


class CorruptRecordError(DeserializationError):
    """The Avro body does not decode with its writer schema."""


class TruncatedRecordError(CorruptRecordError):
    """The record ends before the header or the body is complete."""


class UnknownSchemaIdError(DeserializationError):
    """The registry knows no schema with the id in the header."""


class SchemaMismatchError(DeserializationError):
    """The writer schema cannot be resolved to the reader schema or the expected type."""


class SchemaLookupError(DeserializationError):
    """The registry could not be reached to fetch the writer schema; retry later."""

    retriable = True


class RegistryError(SerializationError):
    """The schema registry refused a request; ``error_code`` is Confluent's code.

    One family for both sides: the client raises these from error responses, the
    registry service raises them (or the subclasses in :mod:`streaming.registry.errors`
    that word Confluent's messages) and answers with ``status`` and :meth:`body`.
    ``status`` and ``error_code`` are class attributes per Confluent code; a client
    error carries what the response said instead.
    """

    status: int | None = None
    error_code: int | None = None
    headers: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self, message: str, *, status: int | None = None, error_code: int | None = None
    ) -> None:
        self.message = message
        if status is not None:
            self.status = status
            self.error_code = error_code
        code = f" [http {status}, error_code {error_code}]" if status is not None else ""
        super().__init__(f"{message}{code}")

    def body(self) -> dict[str, Any]:
        """The JSON error body Confluent clients parse."""
        return {"error_code": self.error_code, "message": self.message}


class RegistryUnavailableError(RegistryError):
    """The registry did not answer usefully (network, timeout, 408/429/5xx) after retries."""

    retriable = True


class RegistryAuthError(RegistryError):
    """The registry rejected our credentials (401) or permissions (403)."""


class SubjectNotFoundError(RegistryError):
    """40401: no such subject."""

    status, error_code = 404, 40401


class VersionNotFoundError(RegistryError):
    """40402: no such version under the subject."""

    status, error_code = 404, 40402


class SchemaNotFoundError(RegistryError):
    """40403: no such schema (by id, or not registered under the subject)."""

    status, error_code = 404, 40403


class SubjectSoftDeletedError(RegistryError):
    """40404: the subject is soft-deleted (delete it permanently, or re-register)."""

    status, error_code = 404, 40404


class SubjectNotSoftDeletedError(RegistryError):
    """40405: a permanent delete needs a soft delete first."""

    status, error_code = 404, 40405


class VersionSoftDeletedError(RegistryError):
    """40406: the version is soft-deleted."""

    status, error_code = 404, 40406


class VersionNotSoftDeletedError(RegistryError):
    """40407: a permanent version delete needs a soft delete first."""

    status, error_code = 404, 40407


class SubjectConfigNotFoundError(RegistryError):
    """40408: the subject has no compatibility level of its own."""

    status, error_code = 404, 40408


class SubjectModeNotFoundError(RegistryError):
    """40409: the subject has no mode of its own."""

    status, error_code = 404, 40409


class IncompatibleSchemaError(RegistryError):
    """409: the schema breaks the subject's compatibility level."""

    status, error_code = 409, 409


class InvalidSchemaError(RegistryError):
    """42201: the schema text is not a valid schema."""

    status, error_code = 422, 42201


class InvalidVersionError(RegistryError):
    """42202: the version is not a positive integer or 'latest'."""

    status, error_code = 422, 42202


class InvalidCompatibilityLevelError(RegistryError):
    """42203: not one of the seven compatibility levels."""

    status, error_code = 422, 42203


class InvalidModeError(RegistryError):
    """42204: not READWRITE, READONLY or IMPORT."""

    status, error_code = 422, 42204


class OperationNotPermittedError(RegistryError):
    """42205: the registry's mode forbids this."""

    status, error_code = 422, 42205


class ReferenceExistsError(RegistryError):
    """42206: another schema references this version."""

    status, error_code = 422, 42206


class InvalidSubjectError(RegistryError):
    """42208: a subject clients cannot address in a URL."""

    status, error_code = 422, 42208


class RegistryStoreError(RegistryUnavailableError):
    """50001: the registry could not write its store."""

    status, error_code = 500, 50001


class RegistryStoreTimeoutError(RegistryUnavailableError):
    """50002: the registry's store did not answer in time."""

    status, error_code = 500, 50002


class RegistryNotReadyError(RegistryUnavailableError):
    """50003: the registry is still reading its store."""

    status, error_code = 503, 50003


ERROR_CODES: Mapping[int, type[RegistryError]] = {
    cls.error_code: cls
    for cls in (
        SubjectNotFoundError,
        VersionNotFoundError,
        SchemaNotFoundError,
        SubjectSoftDeletedError,
        SubjectNotSoftDeletedError,
        VersionSoftDeletedError,
        VersionNotSoftDeletedError,
        SubjectConfigNotFoundError,
        SubjectModeNotFoundError,
        IncompatibleSchemaError,
        InvalidSchemaError,
        InvalidVersionError,
        InvalidCompatibilityLevelError,
        InvalidModeError,
        OperationNotPermittedError,
        ReferenceExistsError,
        InvalidSubjectError,
        RegistryStoreError,
        RegistryStoreTimeoutError,
        RegistryNotReadyError,
    )
    if cls.error_code is not None
}
"""THE Confluent error-code table: code -> error class, for server and client alike."""


def registry_error(status: int, error_code: int | None, message: str) -> RegistryError:
    """The typed error for a registry error response."""
    cls: type[RegistryError]
    if error_code is not None and error_code in ERROR_CODES:
        cls = ERROR_CODES[error_code]
    elif status in (401, 403):
        cls = RegistryAuthError
    elif status in (408, 429) or status >= 500:
        cls = RegistryUnavailableError
    else:
        cls = RegistryError
    return cls(message, status=status, error_code=error_code)


__all__ = [
    "ERROR_CODES",
    "BadMagicByteError",
    "CorruptRecordError",
    "DeserializationError",
    "IncompatibleSchemaError",
    "InvalidCompatibilityLevelError",
    "InvalidModeError",
    "InvalidSchemaError",
    "InvalidSubjectError",
    "InvalidVersionError",
    "OperationNotPermittedError",
    "ReferenceExistsError",
    "RegistryAuthError",
    "RegistryError",
    "RegistryNotReadyError",
    "RegistryStoreError",
    "RegistryStoreTimeoutError",
    "RegistryUnavailableError",
    "SchemaLoadError",
    "SchemaLookupError",
    "SchemaMismatchError",
    "SchemaNotFoundError",
    "SerializeError",
    "SubjectConfigNotFoundError",
    "SubjectModeNotFoundError",
    "SubjectNotFoundError",
    "SubjectNotSoftDeletedError",
    "SubjectSoftDeletedError",
    "TruncatedRecordError",
    "UnknownSchemaIdError",
    "VersionNotFoundError",
    "VersionNotSoftDeletedError",
    "VersionSoftDeletedError",
    "registry_error",
]
