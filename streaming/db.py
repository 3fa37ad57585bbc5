"""Async PostgreSQL access: engine, transactions, health and a circuit breaker.

SQLAlchemy (asyncio) on asyncpg with pool settings from :class:`DatabaseSettings`.
The only module that inspects driver (asyncpg / SQLAlchemy) exceptions: they become
:mod:`streaming.errors` types here (:func:`translate_db_error`, :func:`translate_sql_error`,
:meth:`Database.raw_connection`), e.g. a unique violation is a :class:`DuplicateKeyError`.
Connection failures trip a :class:`CircuitBreaker` so a dead database makes callers fail
fast with :class:`CircuitOpenError` instead of each waiting out a connect timeout; after
a cooldown one probe is let through and its outcome closes or re-opens the circuit.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine

from streaming.config import DatabaseSettings
from streaming.errors import (
    CircuitOpenError,
    DatabaseError,
    DatabaseUnavailableError,
    DuplicateKeyError,
)
from streaming.logging import get_logger

T = TypeVar("T")
log = get_logger(__name__)

DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)
"""What asyncpg raises on a raw connection (see :meth:`Database.raw_connection`)."""
_UNIQUE_VIOLATION = "23505"  # PostgreSQL SQLSTATE
_CONNECTION_MARKERS = (
    "connection refused",
    "could not connect",
    "connection was closed",
    "connection is closed",
    "cannot connect now",
    "the database system is",
    "terminating connection",
    "connection reset",
    "timeout",
    "timed out",
    "server closed the connection",
)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive connection failures.

    While open, :meth:`call` raises :class:`CircuitOpenError` without touching the
    database. After ``cooldown_s`` a single probe call is allowed (half-open); success
    closes the circuit, failure opens it for another cooldown.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        cooldown_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.cooldown_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def _before(self) -> None:
        state = self.state
        if state is BreakerState.OPEN or (state is BreakerState.HALF_OPEN and self._probing):
            assert self._opened_at is not None
            remaining = max(0.0, self.cooldown_s - (self._clock() - self._opened_at))
            raise CircuitOpenError(self.name, remaining)
        if state is BreakerState.HALF_OPEN:
            self._probing = True

    def record_success(self) -> None:
        if self._opened_at is not None:
            log.info("circuit closed", circuit=self.name)
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self) -> None:
        self._failures += 1
        self._probing = False
        if self._opened_at is not None or self._failures >= self.failure_threshold:
            if self._opened_at is None:
                log.warning("circuit opened", circuit=self.name, failures=self._failures)
            self._opened_at = self._clock()

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` under the breaker; only :class:`DatabaseUnavailableError` counts."""
        self._before()
        try:
            result = await fn()
        except CircuitOpenError:
            raise
        except DatabaseUnavailableError:
            self.record_failure()
            raise
        except BaseException:
            self._probing = False
            raise
        self.record_success()
        return result


def _is_connection_problem(exc: BaseException) -> bool:
    if isinstance(exc, OSError | asyncio.TimeoutError | ConnectionError):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    message = str(exc).lower()
    return any(marker in message for marker in _CONNECTION_MARKERS)


def _is_duplicate_key(exc: BaseException) -> bool:
    """A unique violation, raw from asyncpg or wrapped by SQLAlchemy (``orig``/cause)."""
    seen: BaseException | None = exc
    for _ in range(3):
        if seen is None:
            return False
        if getattr(seen, "sqlstate", None) == _UNIQUE_VIOLATION:
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def translate_db_error(exc: BaseException, settings: DatabaseSettings) -> DatabaseError:
    """One line that says what failed and how to fix it; never a password."""
    where = settings.display_url
    orig = getattr(exc, "orig", None) or exc
    reason = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    if _is_connection_problem(exc):
        return DatabaseUnavailableError(
            f"cannot reach PostgreSQL at {where}: {reason}; is it running? "
            "check DATABASE_URL (or DB_HOST/DB_PORT), or run 'streaming dev up'"
        )
    kind = DuplicateKeyError if _is_duplicate_key(exc) else DatabaseError
    return kind(f"PostgreSQL error at {where}: {reason}")


def translate_sql_error(exc: BaseException, doing: str) -> DatabaseError:
    """For callers with an engine of their own (no settings): ``could not <doing>: ...``.

    A lost connection (any :class:`OperationalError`/:class:`InterfaceError` counts) is
    retriable; the message names only the exception type, never SQL or values.
    """
    lost = isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError) or (
        _is_connection_problem(exc)
    )
    if lost:
        return DatabaseUnavailableError(f"could not {doing}: PostgreSQL is unreachable")
    kind = DuplicateKeyError if _is_duplicate_key(exc) else DatabaseError
    return kind(f"could not {doing}: {type(exc).__name__}")


class Database:
    """Owns the engine; every connection goes through the circuit breaker."""

    def __init__(
        self,
        settings: DatabaseSettings,
        *,
        breaker: CircuitBreaker | None = None,
        echo: bool = False,
    ) -> None:
        self.settings = settings
        self.breaker = breaker or CircuitBreaker(
            "postgres",
            failure_threshold=settings.breaker_failure_threshold,
            cooldown_s=settings.breaker_cooldown_s,
        )
        connect_args: dict[str, Any] = {"timeout": settings.connect_timeout_s}
        mode = settings.effective_ssl_mode
        if mode in {"require", "verify-ca", "verify-full", "prefer", "disable"}:
            connect_args["ssl"] = mode
        self.engine: AsyncEngine = create_async_engine(
            settings.connection_url,
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
            pool_timeout=settings.pool_timeout_s,
            pool_recycle=settings.pool_recycle_s,
            pool_pre_ping=True,
            connect_args=connect_args,
            echo=echo,
        )

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _checkout(self) -> AsyncConnection:
        async def connect() -> AsyncConnection:
            try:
                return await self.engine.connect()
            except (TimeoutError, sa_exc.SQLAlchemyError, OSError) as exc:
                raise translate_db_error(exc, self.settings) from exc

        return await self.breaker.call(connect)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection (autobegin; caller commits)."""
        conn = await self._checkout()
        try:
            yield conn
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            error = translate_db_error(exc, self.settings)
            if isinstance(error, DatabaseUnavailableError):
                self.breaker.record_failure()
            raise error from exc
        finally:
            await conn.close()

    @asynccontextmanager
    async def raw_connection(self) -> AsyncIterator[Any]:
        """The driver's (asyncpg) connection of a pooled one, for COPY and arrays; its
        errors come out translated, and a lost one is dropped from the pool."""
        async with self.connect() as conn:
            fairy = await conn.get_raw_connection()
            try:
                yield fairy.driver_connection
            except DRIVER_ERRORS as exc:
                error = translate_db_error(exc, self.settings)
                if isinstance(error, DatabaseUnavailableError):
                    self.breaker.record_failure()
                    fairy.invalidate()
                raise error from exc

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """An ORM session bound to one breaker-guarded connection."""
        async with self.connect() as conn:
            session = AsyncSession(bind=conn, expire_on_commit=False)
            try:
                yield session
            finally:
                await session.close()

    async def execute_scalar(self, sql: str, **params: Any) -> Any:
        async with self.connect() as conn:
            result = await conn.execute(text(sql), params)
            value = result.scalar()
            await conn.commit()
            return value

    async def get_health_status(self) -> dict[str, Any]:
        """``{"healthy", "response_time_ms", "pool_status", ...}`` as in the seed."""
        started = time.perf_counter()
        error: str | None = None
        try:
            await self.execute_scalar("SELECT 1")
            healthy = True
        except DatabaseError as exc:
            healthy = False
            error = str(exc)
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        pool: Any = self.engine.pool
        status: dict[str, Any] = {
            "healthy": healthy,
            "response_time_ms": elapsed_ms,
            "url": self.settings.display_url,
            "circuit": self.breaker.state.value,
            "pool_status": {
                "pool_size": pool.size() if hasattr(pool, "size") else None,
                "checked_out": pool.checkedout() if hasattr(pool, "checkedout") else None,
                "checked_in": pool.checkedin() if hasattr(pool, "checkedin") else None,
                "overflow": pool.overflow() if hasattr(pool, "overflow") else None,
            },
        }
        if error:
            status["error"] = error
        return status


_current_session: contextvars.ContextVar[AsyncSession | None] = contextvars.ContextVar(
    "streaming_db_session", default=None
)


class TransactionManager:
    """``async with tm.transaction() as session``: commit on success, roll back on error.

    Nested calls in the same task reuse the outer session inside a SAVEPOINT, so an inner
    failure rolls back only the inner work.
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        outer = _current_session.get()
        if outer is not None:
            async with self._savepoint(outer):
                yield outer
            return
        async with self.database.session() as session:
            token = _current_session.set(session)
            try:
                async with session.begin():
                    yield session
            except (sa_exc.SQLAlchemyError, OSError) as exc:
                raise translate_db_error(exc, self.database.settings) from exc
            finally:
                _current_session.reset(token)

    @asynccontextmanager
    async def _savepoint(self, session: AsyncSession) -> AsyncIterator[None]:
        try:
            async with session.begin_nested():
                yield
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            raise translate_db_error(exc, self.database.settings) from exc


__all__ = [
    "DRIVER_ERRORS",
    "BreakerState",
    "CircuitBreaker",
    "Database",
    "TransactionManager",
    "translate_db_error",
    "translate_sql_error",
]
