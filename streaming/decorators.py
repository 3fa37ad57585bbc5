"""The seed's cross-cutting decorators, for sync and async callables (methods included).

Stack them in the seed's order, outermost first::

    @with_execution_context("place_order")      # binds the correlation id
    @with_audit_context("order", "place", "why") # records one audit event per call
    @with_performance_monitoring(slow_threshold_ms=500)  # span, histogram, slow warning
    @require_permission(ResourceType.ORDER, Action.CREATE)
    @with_retry(max_attempts=3)                   # retries retriable errors only

Each keeps the wrapped callable's kind: an ``async def`` stays a coroutine function, a
plain function stays plain (a sync function audited through Kafka waits for the audit
record on a private event loop thread, see :func:`run_coroutine_sync`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, Protocol, TypeVar, cast
from uuid import UUID

import structlog
from opentelemetry import metrics, trace

from streaming.audit.logger import AuditLogger
from streaming.context import (
    AuditContext,
    ExecutionContext,
    audit_context,
    current_execution_context,
    execution_context,
)
from streaming.core.backoff import Backoff
from streaming.errors import StreamingError
from streaming.events import AuditEventType, AuditOutcome
from streaming.telemetry import INSTRUMENTATION_NAME

P = ParamSpec("P")
R = TypeVar("R")


class Decorator(Protocol):
    """Returns the callable it decorates with the same signature (sync or async)."""

    def __call__(self, fn: Callable[P, R], /) -> Callable[P, R]: ...


log = structlog.get_logger(__name__)

DEFAULT_RETRY_BACKOFF = Backoff(initial_s=0.1, max_s=5.0)
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)
"""Retried by :func:`with_retry` besides errors marked ``retriable``."""


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn)


# --------------------------------------------------------------------------- sync bridge


class _LoopThread:
    """One daemon thread running an event loop, for sync callers of async I/O."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="streaming-sync-bridge", daemon=True
                ).start()
                self._loop = loop
            return self._loop


_BRIDGE = _LoopThread()


def run_coroutine_sync(coro: Coroutine[Any, Any, R], timeout_s: float = 30.0) -> R:
    """Run ``coro`` to completion from sync code, even when this thread runs an event loop
    (the coroutine runs on a private loop thread; contextvars are copied there)."""
    return asyncio.run_coroutine_threadsafe(coro, _BRIDGE.loop()).result(timeout_s)


# --------------------------------------------------------------------------- context


@contextmanager
def _child_context(operation: str) -> Iterator[ExecutionContext]:
    parent = current_execution_context()
    ctx = parent.child(operation) if parent else ExecutionContext.create_for_system(operation)
    with execution_context(ctx):
        yield ctx


def with_execution_context(operation: str) -> Decorator:
    """Run the callable inside a child of the current execution context (or a new one):
    same correlation id and user, ``operation`` as its name."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if _is_async(fn):
            afn = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def awrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                with _child_context(operation):
                    return await afn(*args, **kwargs)

            return cast(Callable[P, R], awrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with _child_context(operation):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


# --------------------------------------------------------------------------- audit

_default_logger: AuditLogger | None = None
_default_lock = threading.Lock()


def set_default_audit_logger(logger: AuditLogger | None) -> None:
    """Make ``logger`` the one :func:`with_audit_context` records through (``None``: back
    to one built from settings on first use)."""
    global _default_logger
    with _default_lock:
        _default_logger = logger


def default_audit_logger() -> AuditLogger:
    """The configured audit logger: the one set with :func:`set_default_audit_logger`,
    else an ``AuditLogger`` whose producer comes from the settings."""
    global _default_logger
    with _default_lock:
        if _default_logger is None:
            _default_logger = AuditLogger()
        return _default_logger


def audit_event_type(resource_type: str, action: str) -> AuditEventType:
    """``("order", "place")`` -> ``ORDER_PLACED``; ``UNKNOWN`` when no type matches."""
    stem = f"{resource_type}_{action}".upper()
    for name in (f"{stem}ED", f"{stem}D", f"{stem}LED", stem):
        if name in AuditEventType.__members__:
            return AuditEventType[name]
    return AuditEventType.UNKNOWN


def _resource_id(result: object) -> str | None:
    return str(result) if isinstance(result, str | int | UUID) else None


def with_audit_context(
    resource_type: str,
    action: str,
    reason: str | None = None,
    *,
    event_type: AuditEventType | None = None,
    audit_logger: AuditLogger | None = None,
) -> Decorator:
    """Bind an :class:`AuditContext` and record one audit event per call.

    The event (``event_type`` or :func:`audit_event_type`) names the resource, action,
    ``reason`` and the function, its outcome (``FAILURE`` with the error type when the
    call raised) and, when the call returned an id (``str``, ``int``, ``UUID``), that id
    as ``resource_id``. It goes through ``audit_logger``, else
    :func:`default_audit_logger`. If the audit record cannot be written after a call
    succeeded, that error is raised: an action must not pass unaudited.
    """
    kind = event_type or audit_event_type(resource_type, action)

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        name = fn.__qualname__

        async def record(result: object, error: BaseException | None) -> None:
            details = {"function": name}
            if reason:
                details["reason"] = reason
            if error is not None:
                details["error_type"] = type(error).__name__
            logger = audit_logger or default_audit_logger()
            try:
                await logger.log_business_event(
                    kind,
                    resource_type=resource_type,
                    resource_id=_resource_id(result),
                    action=action,
                    details=details,
                    outcome=AuditOutcome.FAILURE if error is not None else AuditOutcome.SUCCESS,
                )
            except Exception as exc:
                if error is None:
                    raise
                # the call's own error wins; the lost record is logged, never swallowed
                log.error("audit record lost", function=name, error=str(exc))

        def context() -> Any:
            return audit_context(AuditContext(resource_type, action, reason))

        if _is_async(fn):
            afn = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def awrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                with context():
                    try:
                        result = await afn(*args, **kwargs)
                    except Exception as exc:
                        await record(None, exc)
                        raise
                    await record(result, None)
                    return result

            return cast(Callable[P, R], awrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with context():
                try:
                    result = fn(*args, **kwargs)
                except Exception as exc:
                    run_coroutine_sync(record(None, exc))
                    raise
                run_coroutine_sync(record(result, None))
                return result

        return wrapper

    return decorate


# --------------------------------------------------------------------------- retry


def is_retriable(exc: BaseException, extra: tuple[type[BaseException], ...] = ()) -> bool:
    """A :class:`StreamingError` marked ``retriable``, a connection error or a timeout."""
    if isinstance(exc, StreamingError):
        return exc.retriable or isinstance(exc, extra)
    return isinstance(exc, CONNECTION_ERRORS + extra)


def with_retry(
    max_attempts: int = 3,
    backoff: Backoff = DEFAULT_RETRY_BACKOFF,
    *,
    retry_on: tuple[type[BaseException], ...] = (),
) -> Decorator:
    """Call again after a retriable error (:func:`is_retriable`, plus ``retry_on``), up to
    ``max_attempts`` calls in all, waiting :class:`~streaming.core.backoff.Backoff` delays
    (exponential, jittered); any other error, or the last one, is raised as it is."""
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        name = fn.__qualname__

        def should_retry(exc: Exception, attempt: int) -> bool:
            if attempt >= max_attempts or not is_retriable(exc, retry_on):
                return False
            log.warning(
                "retrying",
                function=name,
                attempt=attempt,
                max_attempts=max_attempts,
                error_type=type(exc).__name__,
                error=str(exc),
            )
            return True

        if _is_async(fn):
            afn = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def awrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                attempt = 1
                while True:
                    try:
                        return await afn(*args, **kwargs)
                    except Exception as exc:
                        if not should_retry(exc, attempt):
                            raise
                    await asyncio.sleep(backoff.delay_s(attempt))
                    attempt += 1

            return cast(Callable[P, R], awrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            attempt = 1
            while True:
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:
                    if not should_retry(exc, attempt):
                        raise
                time.sleep(backoff.delay_s(attempt))  # bounded by max_attempts
                attempt += 1

        return wrapper

    return decorate


# --------------------------------------------------------------------------- performance


def with_performance_monitoring(
    slow_threshold_ms: float = 1000.0,
    *,
    name: str | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> Decorator:
    """Time each call: an OpenTelemetry span named after the function (or ``name``), its
    duration in the ``streaming.operation.duration`` histogram (seconds, by ``operation``
    and ``outcome``), and a ``slow operation`` warning log above ``slow_threshold_ms``."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        operation = name or fn.__qualname__
        tracer = trace.get_tracer(INSTRUMENTATION_NAME, tracer_provider=tracer_provider)
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(INSTRUMENTATION_NAME)
        histogram = meter.create_histogram(
            "streaming.operation.duration",
            unit="s",
            description="Duration of calls monitored by with_performance_monitoring",
        )

        @contextmanager
        def measured() -> Iterator[None]:
            started = time.perf_counter()
            outcome = "error"
            with tracer.start_as_current_span(operation, attributes={"code.function": operation}):
                try:
                    yield
                    outcome = "ok"
                finally:
                    elapsed = time.perf_counter() - started
                    histogram.record(elapsed, {"operation": operation, "outcome": outcome})
                    if elapsed * 1000 > slow_threshold_ms:
                        log.warning(
                            "slow operation",
                            operation=operation,
                            duration_ms=round(elapsed * 1000, 3),
                            threshold_ms=slow_threshold_ms,
                            outcome=outcome,
                        )

        if _is_async(fn):
            afn = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def awrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                with measured():
                    return await afn(*args, **kwargs)

            return cast(Callable[P, R], awrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with measured():
                return fn(*args, **kwargs)

        return wrapper

    return decorate


__all__ = [
    "CONNECTION_ERRORS",
    "DEFAULT_RETRY_BACKOFF",
    "audit_event_type",
    "default_audit_logger",
    "is_retriable",
    "run_coroutine_sync",
    "set_default_audit_logger",
    "with_audit_context",
    "with_execution_context",
    "with_performance_monitoring",
    "with_retry",
]
