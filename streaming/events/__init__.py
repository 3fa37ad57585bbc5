"""Events: the framework (:mod:`.base`, :mod:`.binding`) apart from the models it carries
(:mod:`.domain` for trading, :mod:`.audit` for the audit contract)."""

from streaming.events.audit import Actor, ActorType, AuditEvent, AuditEventType, AuditOutcome
from streaming.events.base import (
    Amount,
    AvroModel,
    Event,
    EventMetadata,
    Money,
    TimestampMillis,
    utc_now,
)
from streaming.events.binding import EVENT_TYPES, EventDeserializer, EventTypes
from streaming.events.domain import (
    CancelReason,
    OrderCancelled,
    OrderFilled,
    OrderPlaced,
    OrderSide,
    OrderType,
    PositionChanged,
    PositionChangeReason,
    TimeInForce,
    UserRegistered,
)

__all__ = [
    "EVENT_TYPES",
    "Actor",
    "ActorType",
    "Amount",
    "AuditEvent",
    "AuditEventType",
    "AuditOutcome",
    "AvroModel",
    "CancelReason",
    "Event",
    "EventDeserializer",
    "EventMetadata",
    "EventTypes",
    "Money",
    "OrderCancelled",
    "OrderFilled",
    "OrderPlaced",
    "OrderSide",
    "OrderType",
    "PositionChangeReason",
    "PositionChanged",
    "TimeInForce",
    "TimestampMillis",
    "UserRegistered",
    "utc_now",
]
