"""Fixtures of the outbox tests: a fresh outbox table and business table per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from sqlalchemy import text

from connectors.outbox_relay import migrate_outbox
from streaming.db import Database


@pytest_asyncio.fixture
async def tables(database: Database) -> AsyncIterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:10]
    outbox, orders = f"outbox_{suffix}", f"orders_{suffix}"
    await migrate_outbox(database, outbox)
    async with database.connect() as conn:
        await conn.execute(text(f"CREATE TABLE {orders} (id uuid PRIMARY KEY, account text)"))
        await conn.commit()
    yield outbox, orders
    async with database.connect() as conn:
        await conn.execute(text(f"DROP TABLE IF EXISTS {outbox}, {orders}"))
        await conn.commit()
