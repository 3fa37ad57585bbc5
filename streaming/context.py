"""Who is doing what, carried implicitly through async code with contextvars.

``ExecutionContext`` holds the correlation id that logs, produced headers and audit
events all share; ``AuditContext`` says which resource and action an operation audits.
Both are bound for the duration of a ``with`` block and restored afterwards, so
concurrent tasks never see each other's values.
"""

from __future__ import annotations

import contextvars
import functools
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

from streaming.core.headers import H_CORRELATION_ID, HTTP_CORRELATION_ID

P = ParamSpec("P")
R = TypeVar("R")


def _new_id() -> str:
    return str(uuid.uuid4())


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
        operation: str,
        *,
        user_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        ip_address: str | None = None,
    ) -> ExecutionContext:
        """Reuse the caller's ``X-Correlation-ID`` when it sent one, else start a new one."""
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        correlation = lowered.get(HTTP_CORRELATION_ID) or lowered.get(H_CORRELATION_ID)
        return cls(
            operation=operation,
            correlation_id=correlation or _new_id(),
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


def with_execution_context(
    operation: str,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Run a coroutine function inside a child of the current context (or a new one)."""

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            parent = _execution.get()
            ctx = (
                parent.child(operation) if parent else ExecutionContext.create_for_system(operation)
            )
            with execution_context(ctx):
                return await fn(*args, **kwargs)

        return wrapper

    return decorate


def with_audit_context(
    resource_type: str, action: str, reason: str | None = None
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with audit_context(AuditContext(resource_type, action, reason)):
                return await fn(*args, **kwargs)

        return wrapper

    return decorate


__all__ = [
    "AuditContext",
    "ExecutionContext",
    "audit_context",
    "current_audit_context",
    "current_correlation_id",
    "current_execution_context",
    "execution_context",
    "with_audit_context",
    "with_execution_context",
]
