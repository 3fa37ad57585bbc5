"""The plugin's in-memory fixtures: a producer and a consumer that talk with no broker."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from uuid import uuid4

from streaming.clients.producer import EventProducer
from streaming.events import OrderPlaced, OrderSide, OrderType
from streaming.testing import eventually
from streaming.testing.plugin import ConsumerFactory


async def test_memory_consumer_reads_what_memory_producer_sent(
    memory_producer: EventProducer, memory_consumer: ConsumerFactory
) -> None:
    sent = OrderPlaced(
        order_id=uuid4(),
        account_id="a",
        symbol="AAPL",
        side=OrderSide.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal(1),
    )
    await memory_producer.send("orders", sent)
    consumer = memory_consumer("orders", group_id="g", poll_timeout_ms=50)
    got: list[OrderPlaced] = []

    @consumer.handler(OrderPlaced)
    async def handle(event: OrderPlaced) -> None:
        got.append(event)

    task = asyncio.create_task(consumer.run())
    try:
        assert await eventually(lambda: got, timeout_s=10, what="the order") == [sent]
    finally:
        consumer.request_stop()
        await asyncio.wait_for(task, 10)
