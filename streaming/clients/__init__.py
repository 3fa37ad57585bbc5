"""Typed clients: producer, consumer, retry policy and router, topics, and the event bus.

The data flow reads ``model -> producer -> publish middlewares -> transport -> Kafka ->
consumer (+ its partition flow) -> middlewares -> handler -> retry/DLQ``; each step is one
module here (``chain`` composes both middleware chains).
"""

from streaming.clients.bus import EventBus, InMemoryEventBus, KafkaEventBus
from streaming.clients.consumer import ConsumerOptions, EventConsumer
from streaming.clients.producer import EventProducer
from streaming.clients.retry import RetryPolicy

__all__ = [
    "ConsumerOptions",
    "EventBus",
    "EventConsumer",
    "EventProducer",
    "InMemoryEventBus",
    "KafkaEventBus",
    "RetryPolicy",
]
