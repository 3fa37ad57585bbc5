"""Typed clients: producer, consumer, retry policy and router, topics, and the event bus.

The data flow reads ``model -> producer -> transport -> Kafka -> consumer -> middlewares ->
handler -> retry/DLQ``; each step is one module here.
"""

from streaming.clients.bus import EventBus, InMemoryEventBus, KafkaEventBus
from streaming.clients.consumer import EventConsumer
from streaming.clients.producer import EventProducer
from streaming.clients.retry import RetryPolicy

__all__ = [
    "EventBus",
    "EventConsumer",
    "EventProducer",
    "InMemoryEventBus",
    "KafkaEventBus",
    "RetryPolicy",
]
