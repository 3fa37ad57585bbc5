"""The registry service's wording of Confluent's errors.

The error classes, their HTTP statuses and Confluent codes are the one registry family
in :mod:`streaming.serde.errors` (drawn in :mod:`streaming.errors`), shared with the
client so both sides agree on every code. This module adds only what the server needs:
constructors that word Confluent's messages, the plain-HTTP :class:`RequestError`, and
:func:`http_status`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from streaming.serde.errors import (
    IncompatibleSchemaError,
    InvalidCompatibilityLevelError,
    InvalidModeError,
    InvalidSchemaError,
    InvalidSubjectError,
    InvalidVersionError,
    OperationNotPermittedError,
    ReferenceExistsError,
    RegistryError,
    RegistryNotReadyError,
    RegistryStoreError,
    RegistryStoreTimeoutError,
    SchemaNotFoundError,
    SubjectConfigNotFoundError,
    SubjectModeNotFoundError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
    VersionNotSoftDeletedError,
    VersionSoftDeletedError,
)

# The server's short names for family members whose message is free text.
InvalidSchema = InvalidSchemaError
OperationNotPermitted = OperationNotPermittedError
ReferenceExists = ReferenceExistsError
StoreError = RegistryStoreError
StoreTimeout = RegistryStoreTimeoutError


class SubjectNotFound(SubjectNotFoundError):
    def __init__(self, subject: str) -> None:
        super().__init__(f"Subject '{subject}' not found.")


class VersionNotFound(VersionNotFoundError):
    def __init__(self, subject: str, version: int | str) -> None:
        super().__init__(f"Version {version} not found for subject '{subject}'.")


class SchemaNotFound(SchemaNotFoundError):
    def __init__(self, message: str = "Schema not found") -> None:
        super().__init__(message)


class SubjectSoftDeleted(SubjectSoftDeletedError):
    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently"
        )


class SubjectNotSoftDeleted(SubjectNotSoftDeletedError):
    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' was not deleted first before being permanently deleted"
        )


class VersionSoftDeleted(VersionSoftDeletedError):
    def __init__(self, subject: str, version: int) -> None:
        super().__init__(
            f"Subject '{subject}' Version {version} was soft deleted. "
            "Set permanent=true to delete permanently"
        )


class VersionNotSoftDeleted(VersionNotSoftDeletedError):
    def __init__(self, subject: str, version: int) -> None:
        super().__init__(
            f"Subject '{subject}' Version {version} was not deleted first before being "
            "permanently deleted"
        )


class SubjectConfigNotFound(SubjectConfigNotFoundError):
    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' does not have subject-level compatibility configured"
        )


class SubjectModeNotFound(SubjectModeNotFoundError):
    def __init__(self, subject: str) -> None:
        super().__init__(f"Subject '{subject}' does not have subject-level mode configured")


class IncompatibleSchema(IncompatibleSchemaError):
    def __init__(self, subject: str, messages: list[str]) -> None:
        self.messages = messages
        super().__init__(
            f"Schema being registered is incompatible with an earlier schema for subject "
            f'"{subject}", details: [{", ".join(messages)}]'
        )


class SchemaWorkTimeout(InvalidSchemaError):
    """Parsing or checking a schema took longer than the registry allows (a 42201, so
    clients do not retry a schema that will take as long again)."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        super().__init__(
            f"Invalid schema: parsing and checking it took longer than this registry's "
            f"limit of {limit_s:g}s; split the record into smaller ones, or raise the limit "
            "(REGISTRY_SERVER_SCHEMA_TIMEOUT_S)"
        )


class InvalidVersion(InvalidVersionError):
    def __init__(self, version: str) -> None:
        super().__init__(
            f"The specified version '{version}' is not a valid version id. Allowed values are "
            'between [1, 2^31-1] and the string "latest"'
        )


class InvalidCompatibilityLevel(InvalidCompatibilityLevelError):
    def __init__(self, level: object) -> None:
        super().__init__(
            f"Invalid compatibility level {level!r}. Valid values are none, backward, forward, "
            "full, backward_transitive, forward_transitive, and full_transitive"
        )


class InvalidMode(InvalidModeError):
    def __init__(self, mode: object) -> None:
        super().__init__(f"Invalid mode {mode!r}. Valid values are READWRITE, READONLY and IMPORT")


class InvalidSubject(InvalidSubjectError):
    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Invalid subject {subject!r}: '.', '..' and control characters cannot be "
            "addressed in URLs; pick a subject name without them"
        )


class NotReady(RegistryNotReadyError):
    def __init__(self, message: str = "Schema registry is still reading its store; retry") -> None:
        super().__init__(message)


class RequestError(RegistryError):
    """A malformed HTTP request (bad JSON, wrong field types): plain HTTP codes like Confluent."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = self.error_code = status

    @property
    def http_status(self) -> int:
        return self.status or 400


class BodyTimeout(RequestError):
    """The client stopped sending its body: answer 408 and close the connection."""

    headers: ClassVar[Mapping[str, str]] = {"Connection": "close"}

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            408, f"Request body not received within {timeout_s:g}s (REGISTRY_SERVER_BODY_TIMEOUT_S)"
        )


def http_status(error: RegistryError) -> int:
    """The HTTP status for ``error`` (500 for a family member without its own)."""
    return error.status if error.status is not None else 500


__all__ = [
    "BodyTimeout",
    "IncompatibleSchema",
    "InvalidCompatibilityLevel",
    "InvalidMode",
    "InvalidSchema",
    "InvalidSubject",
    "InvalidVersion",
    "NotReady",
    "OperationNotPermitted",
    "ReferenceExists",
    "RegistryError",
    "RequestError",
    "SchemaNotFound",
    "SchemaWorkTimeout",
    "StoreError",
    "StoreTimeout",
    "SubjectConfigNotFound",
    "SubjectModeNotFound",
    "SubjectNotFound",
    "SubjectNotSoftDeleted",
    "SubjectSoftDeleted",
    "VersionNotFound",
    "VersionNotSoftDeleted",
    "VersionSoftDeleted",
    "http_status",
]
