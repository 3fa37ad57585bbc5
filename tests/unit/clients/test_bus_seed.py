"""The seed's event bus promises on the in-memory bus: handler forms and correlation,
retry then dead letters you can list, replay, broker-probing health, metrics."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from structlog.testing import capture_logs

from streaming.clients.bus import DeadLetter, EventBusHealth, InMemoryEventBus
from streaming.clients.retry import RetryPolicy
from streaming.context import ExecutionContext, current_correlation_id
from streaming.events import OrderPlaced, OrderSide, OrderType
from streaming.testing import eventually
from streaming.transport.memory import InMemoryAdmin, InMemoryTransport


def order(symbol: str = "AAPL") -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid.uuid4(),
        account_id="acc-1",
        symbol=symbol,
        side=OrderSide.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal(2),
    )


FAST = RetryPolicy(attempts=3, delays_s=(0.01, 0.02), jitter=0.0)


async def test_handlers_get_the_publishers_correlation_id_in_either_form() -> None:
    bus = InMemoryEventBus(retry_policy=FAST)
    await bus.start()
    seen: list[tuple[str, str | None]] = []

    async def one_arg(event: OrderPlaced) -> None:
        seen.append(("one", current_correlation_id()))

    async def two_args(event: OrderPlaced, context: ExecutionContext) -> None:
        seen.append(("two", context.correlation_id))

    await bus.subscribe("OrderPlaced", one_arg)
    await bus.subscribe(OrderPlaced, two_args)
    await bus.publish(order(), context=ExecutionContext(operation="place", correlation_id="c-42"))
    await eventually(lambda: len(seen) == 2, timeout_s=10, what="both handlers")
    assert sorted(seen) == [("one", "c-42"), ("two", "c-42")]
    await bus.stop()


async def test_failing_events_are_retried_then_listed_as_dead_letters_and_replayed() -> None:
    bus = InMemoryEventBus(retry_policy=FAST)
    await bus.start()
    attempts: dict[str, int] = {}
    fixed = asyncio.Event()
    delivered: list[str] = []

    async def handler(event: OrderPlaced) -> None:
        attempts[event.symbol] = attempts.get(event.symbol, 0) + 1
        if event.symbol == "TSLA" and not fixed.is_set():
            raise RuntimeError("cannot price TSLA")
        delivered.append(event.symbol)

    await bus.subscribe("OrderPlaced", handler)
    bad = order("TSLA")
    await bus.publish(bad, context=ExecutionContext(operation="p", correlation_id="c-bad"))
    await bus.publish(order("MSFT"))
    await eventually(
        lambda: bus.get_metrics().events_dead_lettered == 1, timeout_s=10, what="a dead letter"
    )
    assert attempts["TSLA"] == 3  # the first delivery and two retries
    letters = await bus.dead_letters()
    assert len(letters) == 1
    letter = letters[0]
    assert isinstance(letter, DeadLetter)
    assert letter.event == bad
    assert (letter.event_type, letter.topic, letter.attempt) == (
        "OrderPlaced",
        "events.OrderPlaced",
        3,
    )
    assert letter.exception_type == "RuntimeError"
    assert letter.exception_message == "cannot price TSLA"
    assert letter.correlation_id == "c-bad"
    metrics = bus.get_metrics()
    assert (metrics.events_published, metrics.events_processed) == (2, 1)
    assert metrics.events_failed == 3
    assert metrics.events_retried == 2
    assert metrics.average_processing_time_ms > 0

    fixed.set()
    assert await bus.replay() == 1
    await eventually(lambda: delivered.count("TSLA") == 1, timeout_s=10, what="the replayed one")
    assert await bus.dead_letters() == []  # a replayed letter is not listed again
    assert await bus.replay("OrderPlaced") == 0  # and never moved twice
    await bus.stop()


class _Down(InMemoryAdmin):
    async def list_topics(self) -> set[str]:
        await asyncio.Event().wait()  # a broker that never answers
        return set()


class _FlakyTransport(InMemoryTransport):
    down = False

    def admin(self) -> InMemoryAdmin:
        return _Down(self._broker) if self.down else super().admin()


async def test_health_asks_the_broker_and_answers_within_the_timeout() -> None:
    transport = _FlakyTransport()
    bus = InMemoryEventBus(transport, health_timeout_s=0.3)
    assert await bus.health_check() is EventBusHealth.UNHEALTHY  # not started
    await bus.start()
    assert await bus.health_check() is EventBusHealth.HEALTHY
    transport.down = True
    started = time.monotonic()
    with capture_logs() as logs:
        assert await bus.health_check() is EventBusHealth.UNHEALTHY
    assert time.monotonic() - started < 2.0
    assert any(e["event"] == "event bus health: broker did not answer" for e in logs)
    transport.down = False
    assert await bus.health_check() is EventBusHealth.HEALTHY
    await bus.stop()
    assert await bus.health_check() is EventBusHealth.UNHEALTHY


async def test_replay_since_a_time_delivers_everything_from_there_again() -> None:
    bus = InMemoryEventBus(retry_policy=FAST)
    await bus.start()
    seen: list[str] = []

    async def handler(event: OrderPlaced) -> None:
        seen.append(event.symbol)

    await bus.subscribe("OrderPlaced", handler)
    await bus.publish(order("OLD"))
    await eventually(lambda: seen == ["OLD"], timeout_s=10, what="the old event")
    # a cut in a millisecond of its own: OLD is stamped before it, A and B after it
    cut = datetime.now(UTC) + timedelta(milliseconds=2)
    await eventually(lambda: datetime.now(UTC) > cut, timeout_s=1, what="the cut to pass")
    for symbol in ("A", "B"):
        await bus.publish(order(symbol))
    await eventually(lambda: seen == ["OLD", "A", "B"], timeout_s=10, what="the new events")
    assert await bus.replay(since=cut) == 2
    await eventually(lambda: len(seen) == 5, timeout_s=10, what="A and B again")
    assert seen == ["OLD", "A", "B", "A", "B"]
    assert await bus.health_check() is EventBusHealth.HEALTHY  # the consumer is back
    await bus.stop()
