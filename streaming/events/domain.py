"""The trading platform's domain events: orders, fills, positions and users."""

from __future__ import annotations

import enum
from typing import ClassVar
from uuid import UUID

from streaming.events.base import Amount, Event, Money, TimestampMillis


class OrderSide(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(enum.StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(enum.StrEnum):
    DAY = "DAY"
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderPlaced(Event):
    """A client order was accepted by the order service."""

    avro_name: ClassVar[str] = "com.tradesense.events.OrderPlaced"

    order_id: UUID
    account_id: str
    symbol: str
    side: OrderSide
    order_type: OrderType
    quantity: Amount
    limit_price: Money | None = None
    stop_price: Money | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    client_order_id: str | None = None


class CancelReason(enum.StrEnum):
    USER_REQUESTED = "USER_REQUESTED"
    RISK_LIMIT = "RISK_LIMIT"
    EXPIRED = "EXPIRED"
    EXCHANGE_REJECTED = "EXCHANGE_REJECTED"
    SYSTEM = "SYSTEM"


class OrderCancelled(Event):
    """An open order was cancelled; nothing more will fill."""

    avro_name: ClassVar[str] = "com.tradesense.events.OrderCancelled"

    order_id: UUID
    account_id: str
    reason: CancelReason
    remaining_quantity: Amount
    note: str | None = None


class OrderFilled(Event):
    """An execution against an order (partial or final)."""

    avro_name: ClassVar[str] = "com.tradesense.events.OrderFilled"

    order_id: UUID
    fill_id: str
    account_id: str
    symbol: str
    side: OrderSide
    fill_quantity: Amount
    fill_price: Money
    cumulative_quantity: Amount
    leaves_quantity: Amount
    commission: Money | None = None
    venue: str | None = None
    executed_at: TimestampMillis


class PositionChangeReason(enum.StrEnum):
    FILL = "FILL"
    CORPORATE_ACTION = "CORPORATE_ACTION"
    TRANSFER = "TRANSFER"
    ADJUSTMENT = "ADJUSTMENT"


class PositionChanged(Event):
    """An account's holding of one instrument changed."""

    avro_name: ClassVar[str] = "com.tradesense.events.PositionChanged"

    account_id: str
    symbol: str
    previous_quantity: Amount
    new_quantity: Amount
    average_price: Money
    realized_pnl: Money | None = None
    reason: PositionChangeReason
    cause_order_id: str | None = None


# --- users --------------------------------------------------------------------------


class UserRegistered(Event):
    """A new platform user signed up (username, email, full_name are PII)."""

    avro_name: ClassVar[str] = "com.tradesense.events.UserRegistered"

    user_id: UUID
    username: str
    email: str
    full_name: str | None = None
    country: str | None = None
    roles: tuple[str, ...] = ()
