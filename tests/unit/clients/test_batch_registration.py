"""A consumer takes record handlers or batch handlers, as a Spring listener container does."""

from __future__ import annotations

import pytest

from streaming.clients.consumer import ConsumerError, EventConsumer
from streaming.events import OrderCancelled, OrderPlaced
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.transport.memory import InMemoryTransport


def _consumer() -> EventConsumer:
    return EventConsumer(
        InMemoryTransport(), InMemorySchemaRegistryClient(), topics=["t"], group_id="g"
    )


async def _noop(_: object) -> None:
    return None


def test_batch_handlers_and_record_handlers_do_not_mix() -> None:
    consumer = _consumer()
    consumer.add_batch_handler(OrderPlaced, _noop)
    consumer.add_batch_handler(OrderCancelled, _noop)
    with pytest.raises(ConsumerError, match="not both"):
        consumer.add_handler(OrderPlaced, _noop)
    other = _consumer()
    other.add_handler(OrderPlaced, _noop)
    with pytest.raises(ConsumerError, match="not both"):
        other.add_batch_handler(OrderCancelled, _noop)


def test_one_batch_handler_per_type() -> None:
    consumer = _consumer()
    consumer.batch_handler(OrderPlaced)(_noop)
    with pytest.raises(ConsumerError, match="already registered"):
        consumer.batch_handler(OrderPlaced)(_noop)
