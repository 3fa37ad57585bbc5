"""Transactions, savepoints, health and the circuit breaker against real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from streaming.config import DatabaseSettings
from streaming.db import BreakerState, Database, TransactionManager
from streaming.errors import CircuitOpenError, DatabaseError, DatabaseUnavailableError
from streaming.testing import eventually


@pytest.fixture
async def table(database: Database) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    async with database.connect() as conn:
        await conn.execute(text(f"CREATE TABLE {name} (id int primary key, note text)"))
        await conn.commit()
    yield name
    async with database.connect() as conn:
        await conn.execute(text(f"DROP TABLE {name}"))
        await conn.commit()


async def count(database: Database, table: str) -> int:
    return int(await database.execute_scalar(f"SELECT count(*) FROM {table}"))


async def test_transaction_commits(database: Database, table: str) -> None:
    tm = TransactionManager(database)
    async with tm.transaction() as session:
        await session.execute(text(f"INSERT INTO {table} VALUES (1, 'a')"))
    assert await count(database, table) == 1


async def test_transaction_rolls_back_on_error(database: Database, table: str) -> None:
    tm = TransactionManager(database)
    with pytest.raises(RuntimeError):
        async with tm.transaction() as session:
            await session.execute(text(f"INSERT INTO {table} VALUES (1, 'a')"))
            raise RuntimeError("boom")
    assert await count(database, table) == 0


async def test_nested_transaction_is_a_savepoint(database: Database, table: str) -> None:
    tm = TransactionManager(database)
    async with tm.transaction() as session:
        await session.execute(text(f"INSERT INTO {table} VALUES (1, 'outer')"))
        with pytest.raises(DatabaseError):
            async with tm.transaction() as inner:
                assert inner is session
                await inner.execute(text(f"INSERT INTO {table} VALUES (1, 'duplicate')"))
        await session.execute(text(f"INSERT INTO {table} VALUES (2, 'after')"))
    assert await count(database, table) == 2


async def test_health_status_shape(database: Database) -> None:
    status = await database.get_health_status()
    assert status["healthy"] is True
    assert status["response_time_ms"] >= 0
    assert {"pool_size", "checked_out"} <= set(status["pool_status"])


async def test_unreachable_database_gives_one_line_actionable_error() -> None:
    db = Database(
        DatabaseSettings(url=SecretStr("postgresql://u:pw@127.0.0.1:1/x"), connect_timeout_s=2)
    )
    try:
        with pytest.raises(DatabaseUnavailableError) as info:
            await db.execute_scalar("SELECT 1")
    finally:
        await db.close()
    message = str(info.value)
    assert "\n" not in message
    assert "127.0.0.1:1" in message and "DATABASE_URL" in message
    assert "pw" not in message.replace("postgresql", "")


class TcpProxy:
    """A loopback TCP forwarder we can cut and restore, to take PostgreSQL 'down'."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()


async def test_circuit_breaker_fails_fast_then_recovers(
    database_settings: DatabaseSettings,
) -> None:
    real = urlsplit(database_settings.connection_url.replace("+asyncpg", ""))
    proxy = TcpProxy(real.hostname or "127.0.0.1", real.port or 5432)
    await proxy.start()
    url = f"postgresql://{real.username}@127.0.0.1:{proxy.port}{real.path}"
    db = Database(
        DatabaseSettings(
            url=SecretStr(url),
            connect_timeout_s=2,
            breaker_failure_threshold=2,
            breaker_cooldown_s=1.0,
        )
    )
    try:
        assert await db.execute_scalar("SELECT 1") == 1
        await db.engine.dispose()
        await proxy.stop()  # PostgreSQL is now unreachable through this URL

        for _ in range(2):
            with pytest.raises(DatabaseUnavailableError):
                await db.execute_scalar("SELECT 1")
        assert db.breaker.state is BreakerState.OPEN
        started = time.perf_counter()
        with pytest.raises(CircuitOpenError):
            await db.execute_scalar("SELECT 1")
        assert time.perf_counter() - started < 0.05, "an open circuit must not try to connect"
        assert (await db.get_health_status())["healthy"] is False

        await proxy.start()  # same port: the database is back

        async def probed_through() -> bool:
            try:
                assert await db.execute_scalar("SELECT 1") == 1
                return True
            except CircuitOpenError:
                return False

        await eventually(
            probed_through, timeout_s=10, what="the cooldown to let a probe through", interval_s=0.1
        )
        assert db.breaker.state is BreakerState.CLOSED
    finally:
        await db.close()
        with contextlib.suppress(AssertionError):
            await proxy.stop()
