"""Valid synthetic events of every bundled type, for demos, smoke and load tests.

Deterministic for a given :class:`random.Random`, so a test or benchmark can reproduce
its data. ``keys`` bounds how many distinct partition keys appear (to exercise per-key
ordering).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal

from streaming.errors import ConfigError
from streaming.events import (
    Actor,
    ActorType,
    AuditEvent,
    AuditEventType,
    AuditOutcome,
    CancelReason,
    Event,
    EventMetadata,
    Money,
    OrderCancelled,
    OrderFilled,
    OrderPlaced,
    OrderSide,
    OrderType,
    PositionChanged,
    PositionChangeReason,
    UserRegistered,
    utc_now,
)

SYMBOLS = ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA", "META", "BRK.B")


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _amount(rng: random.Random, low: int = 1, high: int = 1000) -> Decimal:
    return Decimal(rng.randint(low * 100, high * 100)) / 100


def _key(rng: random.Random, keys: int | None) -> uuid.UUID:
    return uuid.UUID(int=rng.randrange(keys), version=4) if keys else _uuid(rng)


def _meta(rng: random.Random) -> EventMetadata:
    return EventMetadata(event_id=_uuid(rng), occurred_at=utc_now(), source="fake")


def _placed(rng: random.Random, keys: int | None) -> OrderPlaced:
    limit = rng.random() < 0.5
    return OrderPlaced(
        metadata=_meta(rng),
        order_id=_key(rng, keys),
        account_id=f"acct-{rng.randint(1, 500):04d}",
        symbol=rng.choice(SYMBOLS),
        side=rng.choice(list(OrderSide)),
        order_type=OrderType.LIMIT if limit else OrderType.MARKET,
        quantity=_amount(rng, 1, 100),
        limit_price=Money(amount=_amount(rng), currency="USD") if limit else None,
    )


def _cancelled(rng: random.Random, keys: int | None) -> OrderCancelled:
    return OrderCancelled(
        metadata=_meta(rng),
        order_id=_key(rng, keys),
        account_id=f"acct-{rng.randint(1, 500):04d}",
        reason=rng.choice(list(CancelReason)),
        remaining_quantity=_amount(rng, 1, 50),
    )


def _filled(rng: random.Random, keys: int | None) -> OrderFilled:
    qty = _amount(rng, 1, 50)
    return OrderFilled(
        metadata=_meta(rng),
        order_id=_key(rng, keys),
        fill_id=f"fill-{rng.getrandbits(32):08x}",
        account_id=f"acct-{rng.randint(1, 500):04d}",
        symbol=rng.choice(SYMBOLS),
        side=rng.choice(list(OrderSide)),
        fill_quantity=qty,
        fill_price=Money(amount=_amount(rng), currency="USD"),
        cumulative_quantity=qty,
        leaves_quantity=Decimal(0),
        executed_at=utc_now(),
    )


def _position(rng: random.Random, keys: int | None) -> PositionChanged:
    account = f"acct-{rng.randrange(keys) if keys else rng.randint(1, 500):04d}"
    return PositionChanged(
        metadata=_meta(rng),
        account_id=account,
        symbol=rng.choice(SYMBOLS),
        previous_quantity=_amount(rng, 0, 100),
        new_quantity=_amount(rng, 0, 100),
        average_price=Money(amount=_amount(rng), currency="USD"),
        reason=rng.choice(list(PositionChangeReason)),
    )


def _user(rng: random.Random, keys: int | None) -> UserRegistered:
    n = rng.getrandbits(24)
    return UserRegistered(
        metadata=_meta(rng),
        user_id=_key(rng, keys),
        username=f"user{n}",
        email=f"user{n}@example.com",
        country="US",
        roles=("trader",),
    )


def _audit(rng: random.Random, keys: int | None) -> AuditEvent:
    return AuditEvent(
        metadata=_meta(rng),
        event_type=AuditEventType.ORDER_PLACED,
        actor=Actor(actor_type=ActorType.USER, actor_id=f"user-{rng.randint(1, 99)}"),
        resource_type="order",
        resource_id=str(_key(rng, keys)),
        action="place_order",
        outcome=AuditOutcome.SUCCESS,
    )


FAKERS: dict[type[Event], Callable[[random.Random, int | None], Event]] = {
    OrderPlaced: _placed,
    OrderCancelled: _cancelled,
    OrderFilled: _filled,
    PositionChanged: _position,
    UserRegistered: _user,
    AuditEvent: _audit,
}


def fake_events(
    event_type: type[Event],
    count: int,
    *,
    rng: random.Random | None = None,
    keys: int | None = None,
) -> Iterator[Event]:
    """``count`` valid events of ``event_type`` (over at most ``keys`` partition keys)."""
    maker = FAKERS.get(event_type)
    if maker is None:
        raise ConfigError(
            [f"no fake generator for {event_type.__name__}; known: {[c.__name__ for c in FAKERS]}"]
        )
    rng = rng or random.Random()
    for _ in range(count):
        yield maker(rng, keys)


__all__ = ["FAKERS", "fake_events"]
