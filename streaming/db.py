"""Async PostgreSQL access: engine, transactions, health and a circuit breaker.

SQLAlchemy (asyncio) on asyncpg with pool settings from :class:`DatabaseSettings`.
The only module that inspects driver (asyncpg / SQLAlchemy) exceptions: they become
:mod:`streaming.errors` types here (:func:`translate_db_error`, :func:`translate_sql_error`,
:meth:`Database.raw_connection`), e.g. a unique violation is a :class:`DuplicateKeyError`.
Connection failures trip a :class:`CircuitBreaker` (one per configured host) so a dead
database makes callers fail fast with :class:`CircuitOpenError` instead of each waiting
out a connect timeout, or fail over to the next host; after a cooldown one probe is let
through and its outcome closes or re-opens the circuit.
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
from opentelemetry import metrics
from opentelemetry.metrics import Meter
from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
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


def translate_db_error(
    exc: BaseException, settings: DatabaseSettings, *, where: str | None = None
) -> DatabaseError:
    """One line that says what failed and how to fix it; never a password. ``where``
    names the host it happened on (default: the first configured host)."""
    where = where or settings.display_url
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


class SlowQueryMonitor:
    """Logs (``slow query`` warning) and counts statements slower than ``threshold_ms``.

    Hooks SQLAlchemy's cursor events, so it sees every statement sent through an engine
    (not COPY on a raw driver connection). The statement text is logged cut to 200
    characters; bound parameters never are.
    """

    def __init__(self, threshold_ms: float, meter: Meter | None = None) -> None:
        self.threshold_ms = threshold_ms
        self.counter = (meter or metrics.get_meter(__name__)).create_counter(
            "db.client.slow_queries",
            unit="{query}",
            description=f"statements slower than DB_SLOW_QUERY_MS ({threshold_ms:g} ms)",
        )

    def watch(self, engine: AsyncEngine, url: str) -> None:
        def before(conn: Any, _cursor: Any, *_: Any) -> None:
            conn.info.setdefault("streaming_query_started", []).append(time.perf_counter())

        def after(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            stack = conn.info.get("streaming_query_started")
            if not stack:
                return
            elapsed_ms = (time.perf_counter() - stack.pop()) * 1000
            if elapsed_ms >= self.threshold_ms:
                self.counter.add(1, {"db.system": "postgresql", "server.address": url})
                log.warning(
                    "slow query",
                    duration_ms=round(elapsed_ms, 2),
                    threshold_ms=self.threshold_ms,
                    statement=" ".join(statement.split())[:200],
                    url=url,
                )

        event.listen(engine.sync_engine, "before_cursor_execute", before)
        event.listen(engine.sync_engine, "after_cursor_execute", after)


class _Host:
    """One PostgreSQL host: its own engine (pool), breaker and printable URL."""

    def __init__(
        self, url: str, display_url: str, breaker: CircuitBreaker, engine: AsyncEngine
    ) -> None:
        self.url = url
        self.display_url = display_url
        self.breaker = breaker
        self.engine = engine


class Database:
    """Owns one engine per configured host; every connection goes through a breaker.

    With several hosts (``DB_HOST=a,b`` or a multi-host ``DATABASE_URL``) each checkout
    tries them in the configured order and takes the first that answers: a host whose
    breaker is open is skipped at once, so after ``DB_BREAKER_FAILURE_THRESHOLD`` failures
    a dead primary costs nothing until its cooldown lets one probe through (failover and
    failback). Queries slower than ``DB_SLOW_QUERY_MS`` are logged (``slow query``) and
    counted (``db.client.slow_queries``). ``DatabaseConnectionManager`` is this class
    under the seed's name.
    """

    def __init__(
        self,
        settings: DatabaseSettings,
        *,
        breaker: CircuitBreaker | None = None,
        echo: bool = False,
        meter: Meter | None = None,
    ) -> None:
        self.settings = settings
        connect_args: dict[str, Any] = {"timeout": settings.connect_timeout_s}
        mode = settings.effective_ssl_mode
        if mode in {"require", "verify-ca", "verify-full", "prefer", "disable"}:
            connect_args["ssl"] = mode
        slow = SlowQueryMonitor(settings.slow_query_ms, meter)
        hosts: list[_Host] = []
        for index in range(len(settings.hosts)):
            display = settings.display_host_url(index)
            engine = create_async_engine(
                settings.host_url(index),
                pool_size=settings.pool_size,
                max_overflow=settings.max_overflow,
                pool_timeout=settings.pool_timeout_s,
                pool_recycle=settings.pool_recycle_s,
                pool_pre_ping=True,
                connect_args=connect_args,
                echo=echo,
            )
            slow.watch(engine, display)
            guard = (
                breaker
                if breaker is not None and index == 0
                else CircuitBreaker(
                    "postgres" if index == 0 else f"postgres[{index}]",
                    failure_threshold=settings.breaker_failure_threshold,
                    cooldown_s=settings.breaker_cooldown_s,
                )
            )
            hosts.append(_Host(settings.host_url(index), display, guard, engine))
        self.hosts: tuple[_Host, ...] = tuple(hosts)
        self._active = 0

    @property
    def engine(self) -> AsyncEngine:
        """The engine of the host that answered last (the first host until one fails)."""
        return self.hosts[self._active].engine

    @property
    def breaker(self) -> CircuitBreaker:
        """The breaker of the host that answered last."""
        return self.hosts[self._active].breaker

    def translate(self, exc: BaseException) -> DatabaseError:
        """:func:`translate_db_error` naming the host that answered last."""
        return translate_db_error(exc, self.settings, where=self.hosts[self._active].display_url)

    async def initialize(self) -> Database:
        """Connect once so a wrong URL or a dead database fails here, not on first use."""
        await self.execute_scalar("SELECT 1")
        log.info("database ready", url=self.hosts[self._active].display_url)
        return self

    async def close(self) -> None:
        for host in self.hosts:
            await host.engine.dispose()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _checkout(self) -> tuple[AsyncConnection, _Host]:
        """A connection from the first host that answers, in the configured order."""
        failures: list[DatabaseUnavailableError] = []
        for index, host in enumerate(self.hosts):

            async def connect(host: _Host = host) -> AsyncConnection:
                try:
                    return await host.engine.connect()
                except (TimeoutError, sa_exc.SQLAlchemyError, OSError) as exc:
                    raise translate_db_error(exc, self.settings, where=host.display_url) from exc

            try:
                conn = await host.breaker.call(connect)
            except DatabaseUnavailableError as exc:
                failures.append(exc)
                continue
            if index != self._active:
                log.warning(
                    "database failover", url=host.display_url, skipped=index, hosts=len(self.hosts)
                )
                self._active = index
            return conn, host
        if len(failures) == 1:
            raise failures[0]
        if all(isinstance(f, CircuitOpenError) for f in failures):
            raise min(failures, key=lambda f: getattr(f, "retry_in_s", 0.0))
        raise DatabaseUnavailableError(
            "no PostgreSQL host answered: " + "; ".join(str(f) for f in failures)
        ) from failures[-1]

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection (autobegin; caller commits)."""
        conn, host = await self._checkout()
        try:
            yield conn
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            error = translate_db_error(exc, self.settings, where=host.display_url)
            if isinstance(error, DatabaseUnavailableError):
                host.breaker.record_failure()
            raise error from exc
        finally:
            await conn.close()

    @asynccontextmanager
    async def raw_connection(self) -> AsyncIterator[Any]:
        """The driver's (asyncpg) connection of a pooled one, for COPY and arrays; its
        errors come out translated, and a lost one is dropped from the pool."""
        async with self.connect() as conn:
            fairy = await conn.get_raw_connection()
            host = self.hosts[self._active]
            try:
                yield fairy.driver_connection
            except DRIVER_ERRORS as exc:
                error = translate_db_error(exc, self.settings, where=host.display_url)
                if isinstance(error, DatabaseUnavailableError):
                    host.breaker.record_failure()
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
        """``{"healthy", "response_time_ms", "pool_status", ...}`` as in the seed; with
        several hosts, ``hosts`` lists each one's circuit state."""
        started = time.perf_counter()
        error: str | None = None
        try:
            await self.execute_scalar("SELECT 1")
            healthy = True
        except DatabaseError as exc:
            healthy = False
            error = str(exc)
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        active = self.hosts[self._active]
        pool: Any = active.engine.pool
        status: dict[str, Any] = {
            "healthy": healthy,
            "response_time_ms": elapsed_ms,
            "url": active.display_url,
            "circuit": active.breaker.state.value,
            "pool_status": {
                "pool_size": pool.size() if hasattr(pool, "size") else None,
                "checked_out": pool.checkedout() if hasattr(pool, "checkedout") else None,
                "checked_in": pool.checkedin() if hasattr(pool, "checkedin") else None,
                "overflow": pool.overflow() if hasattr(pool, "overflow") else None,
            },
            "hosts": [{"url": h.display_url, "circuit": h.breaker.state.value} for h in self.hosts],
        }
        if error:
            status["error"] = error
        return status


DatabaseConnectionManager = Database
"""The seed's name for :class:`Database` (``DatabaseConnectionManager(settings.database)``)."""


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
                raise self.database.translate(exc) from exc
            finally:
                _current_session.reset(token)

    @asynccontextmanager
    async def _savepoint(self, session: AsyncSession) -> AsyncIterator[None]:
        try:
            async with session.begin_nested():
                yield
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            raise self.database.translate(exc) from exc


__all__ = [
    "DRIVER_ERRORS",
    "BreakerState",
    "CircuitBreaker",
    "Database",
    "DatabaseConnectionManager",
    "SlowQueryMonitor",
    "TransactionManager",
    "translate_db_error",
    "translate_sql_error",
]
