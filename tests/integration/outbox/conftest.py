"""Fixtures of the outbox tests: a fresh outbox table and business table per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest_asyncio
from sqlalchemy import text

from connectors.outbox_relay import migrate_outbox
from streaming.db import Database
from streaming.events import OrderPlaced, OrderSide, OrderType
from streaming.testing import eventually
from streaming.transport.base import TopicPartition
from streaming.transport.kafka import KafkaTransport


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


def order(account: str) -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid.uuid4(),
        account_id=account,
        symbol="AAPL",
        side=OrderSide.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal("1"),
    )


async def read_topic(transport: KafkaTransport, topic: str) -> list[tuple[str, str, int]]:
    """(event-id, key, offset) of every record up to the end offsets, partition by
    partition: duplicates included, nothing missed."""
    consumer = transport.consumer(group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(await consumer.partitions_for(topic))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        seen: list[tuple[str, str, int]] = []

        async def unread() -> list[TopicPartition]:
            left = [tp for tp in tps if await consumer.position(tp) < end[tp]]
            if left:
                for records in (await consumer.poll(timeout_ms=500)).values():
                    seen.extend(
                        ((r.header("event-id") or b"").decode(), (r.key or b"").decode(), r.offset)
                        for r in records
                    )
            return left

        await eventually(
            unread, until=lambda left: not left, timeout_s=60, what=f"the end of {topic}"
        )
        return seen
    finally:
        await consumer.stop()
