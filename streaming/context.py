"""Who is doing what, carried implicitly through async code with contextvars.

``ExecutionContext`` holds the correlation id that logs, produced headers and audit
events all share; ``AuditContext`` says which resource and action an operation audits.
Both are bound for the duration of a ``with`` block and restored afterwards, so
concurrent tasks never see each other's values. The decorators that bind them live in
:mod:`streaming.decorators`.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from streaming.core.headers import (
    H_CORRELATION_ID,
    HTTP_CORRELATION_ID,
    HTTP_FORWARDED_FOR,
    HTTP_REQUEST_ID,
)


def _new_id() -> str:
    return str(uuid.uuid4())


class ClientAddress(Protocol):
    @property
    def host(self) -> str: ...


class RequestLike(Protocol):
    """What :meth:`ExecutionContext.create_for_request` reads: a Starlette/FastAPI
    ``Request`` or anything with ``headers`` and ``client.host``."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def client(self) -> ClientAddress | None: ...


# An incoming id is trusted only if it looks like an id: it lands in logs and headers.
_ID_SHAPE = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


def _incoming_id(headers: Mapping[str, str]) -> str | None:
    for name in (HTTP_CORRELATION_ID, HTTP_REQUEST_ID, H_CORRELATION_ID):
        value = (headers.get(name) or "").strip()
        if _ID_SHAPE.fullmatch(value):
            return value
    return None


def _operation_of(request: object) -> str:
    method = getattr(request, "method", None)
    path = getattr(getattr(request, "url", None), "path", None)
    return f"{method} {path}" if method and path else "request"


@dataclass(frozen=True, slots=True)
class ExecutionContext:
    """The request- or job-scoped identity of an operation."""

    operation: str
    correlation_id: str = field(default_factory=_new_id)
    user_id: str | None = None
    ip_address: str | None = None
    source: str = "system"
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def create_for_system(cls, operation: str) -> ExecutionContext:
        return cls(operation=operation, source="system")

    @classmethod
    def create_for_request(
        cls,
        request: RequestLike | None = None,
        user_id: str | None = None,
        *,
        operation: str | None = None,
        headers: Mapping[str, str] | None = None,
        ip_address: str | None = None,
        trust_forwarded: bool = True,
    ) -> ExecutionContext:
        """The context of one incoming request.

        The correlation id is the caller's ``X-Correlation-ID``, else ``X-Request-ID``,
        else ``correlation-id`` (a value that is not 1-128 id characters is ignored), else
        a new one. The client IP is the first ``X-Forwarded-For`` hop (set
        ``trust_forwarded=False`` unless a proxy you run sets that header), else
        ``request.client.host``. ``operation`` defaults to ``"<METHOD> <path>"``.
        Explicit ``headers``/``ip_address`` win over the request's.
        """
        source = headers if headers is not None else (request.headers if request else {})
        lowered = {k.lower(): v for k, v in source.items()}
        if ip_address is None:
            forwarded = lowered.get(HTTP_FORWARDED_FOR, "") if trust_forwarded else ""
            first_hop = forwarded.split(",", 1)[0].strip()
            client = request.client if request is not None else None
            ip_address = first_hop or (client.host if client is not None else None)
        return cls(
            operation=operation or _operation_of(request),
            correlation_id=_incoming_id(lowered) or _new_id(),
            user_id=user_id,
            ip_address=ip_address,
            source="request",
        )

    def child(self, operation: str) -> ExecutionContext:
        """Same correlation and user, a new operation name."""
        return replace(self, operation=operation)


@dataclass(frozen=True, slots=True)
class AuditContext:
    """The resource and action an operation is audited under."""

    resource_type: str
    action: str
    reason: str | None = None
    resource_id: str | None = None


_execution: contextvars.ContextVar[ExecutionContext | None] = contextvars.ContextVar(
    "streaming_execution_context", default=None
)
_audit: contextvars.ContextVar[AuditContext | None] = contextvars.ContextVar(
    "streaming_audit_context", default=None
)


def current_execution_context() -> ExecutionContext | None:
    return _execution.get()


def current_audit_context() -> AuditContext | None:
    return _audit.get()


def current_correlation_id() -> str | None:
    ctx = _execution.get()
    return ctx.correlation_id if ctx else None


@contextmanager
def execution_context(ctx: ExecutionContext) -> Iterator[ExecutionContext]:
    token = _execution.set(ctx)
    try:
        yield ctx
    finally:
        _execution.reset(token)


@contextmanager
def audit_context(ctx: AuditContext) -> Iterator[AuditContext]:
    token = _audit.set(ctx)
    try:
        yield ctx
    finally:
        _audit.reset(token)


__all__ = [
    "AuditContext",
    "ClientAddress",
    "ExecutionContext",
    "RequestLike",
    "audit_context",
    "current_audit_context",
    "current_correlation_id",
    "current_execution_context",
    "execution_context",
]
