"""Registry errors: each carries the HTTP status and Confluent ``error_code`` it maps to.

    StreamingError
    +-- RegistryError                 status + error_code + message (the JSON error body)
        +-- SubjectNotFound           404 40401
        +-- VersionNotFound           404 40402
        +-- SchemaNotFound            404 40403
        +-- SubjectSoftDeleted        404 40404
        +-- SubjectNotSoftDeleted     404 40405
        +-- VersionSoftDeleted        404 40406
        +-- VersionNotSoftDeleted     404 40407
        +-- SubjectConfigNotFound     404 40408
        +-- SubjectModeNotFound       404 40409
        +-- IncompatibleSchema        409 409
        +-- InvalidSchema             422 42201
        |   +-- SchemaWorkTimeout     422 42201 (parsing/checking exceeded the time limit)
        +-- InvalidVersion            422 42202
        +-- InvalidCompatibilityLevel 422 42203
        +-- InvalidMode               422 42204
        +-- OperationNotPermitted     422 42205
        +-- ReferenceExists           422 42206
        +-- InvalidSubject            422 42208 (a subject clients cannot address in a URL)
        +-- StoreError                500 50001 (retriable)
        +-- StoreTimeout              500 50002 (retriable)
        +-- NotReady                  503 50003 (retriable; the ``_schemas`` reader is behind)
        +-- RequestError              the plain HTTP status (400, 408, 413, 415, 422)
            +-- BodyTimeout           408 (the body did not arrive in time; connection closed)

The codes follow Confluent Schema Registry so unmodified clients understand them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from streaming.errors import StreamingError


class RegistryError(StreamingError):
    """An error the HTTP layer turns into ``{"error_code": ..., "message": ...}``."""

    status: ClassVar[int] = 500
    error_code: ClassVar[int] = 50001
    headers: ClassVar[Mapping[str, str]] = {}

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        return {"error_code": self.error_code, "message": self.message}


class SubjectNotFound(RegistryError):
    status, error_code = 404, 40401

    def __init__(self, subject: str) -> None:
        super().__init__(f"Subject '{subject}' not found.")


class VersionNotFound(RegistryError):
    status, error_code = 404, 40402

    def __init__(self, subject: str, version: int | str) -> None:
        super().__init__(f"Version {version} not found for subject '{subject}'.")


class SchemaNotFound(RegistryError):
    status, error_code = 404, 40403

    def __init__(self, message: str = "Schema not found") -> None:
        super().__init__(message)


class SubjectSoftDeleted(RegistryError):
    status, error_code = 404, 40404

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently"
        )


class SubjectNotSoftDeleted(RegistryError):
    status, error_code = 404, 40405

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' was not deleted first before being permanently deleted"
        )


class VersionSoftDeleted(RegistryError):
    status, error_code = 404, 40406

    def __init__(self, subject: str, version: int) -> None:
        super().__init__(
            f"Subject '{subject}' Version {version} was soft deleted. "
            "Set permanent=true to delete permanently"
        )


class VersionNotSoftDeleted(RegistryError):
    status, error_code = 404, 40407

    def __init__(self, subject: str, version: int) -> None:
        super().__init__(
            f"Subject '{subject}' Version {version} was not deleted first before being "
            "permanently deleted"
        )


class SubjectConfigNotFound(RegistryError):
    status, error_code = 404, 40408

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' does not have subject-level compatibility configured"
        )


class SubjectModeNotFound(RegistryError):
    status, error_code = 404, 40409

    def __init__(self, subject: str) -> None:
        super().__init__(f"Subject '{subject}' does not have subject-level mode configured")


class IncompatibleSchema(RegistryError):
    status, error_code = 409, 409

    def __init__(self, subject: str, messages: list[str]) -> None:
        self.messages = messages
        super().__init__(
            f"Schema being registered is incompatible with an earlier schema for subject "
            f'"{subject}", details: [{", ".join(messages)}]'
        )


class InvalidSchema(RegistryError):
    status, error_code = 422, 42201


class SchemaWorkTimeout(InvalidSchema):
    """Parsing or checking a schema took longer than the registry allows (a 42201, so
    clients do not retry a schema that will take as long again)."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        super().__init__(
            f"Invalid schema: parsing and checking it took longer than this registry's "
            f"limit of {limit_s:g}s; split the record into smaller ones, or raise the limit "
            "(REGISTRY_SERVER_SCHEMA_TIMEOUT_S)"
        )


class InvalidVersion(RegistryError):
    status, error_code = 422, 42202

    def __init__(self, version: str) -> None:
        super().__init__(
            f"The specified version '{version}' is not a valid version id. Allowed values are "
            'between [1, 2^31-1] and the string "latest"'
        )


class InvalidCompatibilityLevel(RegistryError):
    status, error_code = 422, 42203

    def __init__(self, level: object) -> None:
        super().__init__(
            f"Invalid compatibility level {level!r}. Valid values are none, backward, forward, "
            "full, backward_transitive, forward_transitive, and full_transitive"
        )


class InvalidMode(RegistryError):
    status, error_code = 422, 42204

    def __init__(self, mode: object) -> None:
        super().__init__(f"Invalid mode {mode!r}. Valid values are READWRITE, READONLY and IMPORT")


class OperationNotPermitted(RegistryError):
    status, error_code = 422, 42205


class ReferenceExists(RegistryError):
    status, error_code = 422, 42206


class InvalidSubject(RegistryError):
    status, error_code = 422, 42208

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Invalid subject {subject!r}: '.', '..' and control characters cannot be "
            "addressed in URLs; pick a subject name without them"
        )


class StoreError(RegistryError):
    status, error_code = 500, 50001
    retriable = True


class StoreTimeout(RegistryError):
    status, error_code = 500, 50002
    retriable = True


class NotReady(RegistryError):
    status, error_code = 503, 50003
    retriable = True

    def __init__(self, message: str = "Schema registry is still reading its store; retry") -> None:
        super().__init__(message)


class RequestError(RegistryError):
    """A malformed HTTP request (bad JSON, wrong field types): plain HTTP codes like Confluent."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self._status = status

    def body(self) -> dict[str, Any]:
        return {"error_code": self._status, "message": self.message}

    @property
    def http_status(self) -> int:
        return self._status


class BodyTimeout(RequestError):
    """The client stopped sending its body: answer 408 and close the connection."""

    headers: ClassVar[Mapping[str, str]] = {"Connection": "close"}

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            408, f"Request body not received within {timeout_s:g}s (REGISTRY_SERVER_BODY_TIMEOUT_S)"
        )


def http_status(error: RegistryError) -> int:
    """The HTTP status for ``error`` (request errors carry their own)."""
    return error.http_status if isinstance(error, RequestError) else error.status


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
