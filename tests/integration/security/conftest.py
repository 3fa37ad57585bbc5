"""Real PostgreSQL for the revocation store, from the shared ``database_settings`` fixture."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from streaming.config import DatabaseSettings

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(loop_scope="session")
async def engine(database_settings: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_settings.connection_url, pool_size=5)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def table_name(engine: AsyncEngine) -> AsyncIterator[str]:
    """A fresh table name per test, dropped afterwards."""
    name = f"test_revocations_{uuid.uuid4().hex[:10]}"
    yield name
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
