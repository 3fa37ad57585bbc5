"""The audit schema's connection plumbing, shared by the store's job objects.

Talks asyncpg directly (COPY, arrays) on connections borrowed from
:class:`streaming.db.Database`, so the pool, circuit breaker and error messages are the
shared ones. asyncpg errors come out translated by :mod:`streaming.db`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog

from connectors.audit_sink.migrations import migration_sql
from streaming.db import Database

log = structlog.get_logger(__name__)

class AuditTables:
    """The audit tables of one schema (``AUDIT_DB_SCHEMA``): connections, names, migration."""

    def __init__(
        self, database: Database, schema: str = "audit", *, writer_role: str | None = None
    ) -> None:
        self.database = database
        self.schema = schema
        self.writer_role = writer_role

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A raw asyncpg connection from the shared pool; errors come out translated."""
        async with self.database.raw_connection() as raw:
            yield raw

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        """A transaction, as the writer role when one is configured."""
        async with self.connection() as conn, conn.transaction():
            if self.writer_role:
                await conn.execute(f"SET LOCAL ROLE {self.writer_role}")
            yield conn

    def name(self, table: str) -> str:
        """The schema-qualified name of ``table``."""
        return f"{self.schema}.{table}"

    async def migrate(self) -> None:
        """Create or upgrade the schema (safe to run any number of times)."""
        async with self.connection() as conn, conn.transaction():
            await conn.execute(migration_sql(self.schema, self.writer_role))
        log.info("audit schema migrated", schema=self.schema)


__all__ = ["AuditTables"]
