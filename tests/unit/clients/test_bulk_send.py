"""``streaming produce``'s bulk sends: checked windows, and where a bad input stops them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from streaming.bulk_send import (
    BadInputError,
    Numbered,
    numbered,
    parse_lines,
    send_checked,
    size_checker,
    windows,
)
from streaming.events import OrderPlaced
from streaming.producer import EventProducer
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.transport.base import TopicSpec
from streaming.transport.memory import InMemoryTransport
from tests.unit.clients.test_clients_unit import order


def items(count: int) -> list[Numbered]:
    return list(numbered(order() for _ in range(count)))


async def collect(runs: AsyncIterator[list[Numbered]]) -> list[list[int]]:
    return [[i.number for i in run] async for run in runs]


async def test_windows_are_runs_within_the_bound() -> None:
    async def size_of(item: Numbered) -> int:
        return 400

    assert await collect(windows(items(5), size_of, 1000)) == [[1, 2], [3, 4], [5]]


async def test_a_bad_item_stops_before_its_window_is_yielded() -> None:
    async def size_of(item: Numbered) -> int:
        if item.number == 4:
            raise BadInputError(4, "too big")
        return 400

    seen: list[list[int]] = []
    with pytest.raises(BadInputError):
        async for run in windows(items(5), size_of, 1000):
            seen.append([i.number for i in run])
    assert seen == [[1, 2]]


def test_parse_lines_keeps_line_numbers_across_blank_lines() -> None:
    lines = [order().model_dump_json() + "\n", "\n", '{"order_id": "nope"}\n']
    parsed = parse_lines(OrderPlaced, lines)
    assert next(parsed).number == 1
    with pytest.raises(BadInputError) as bad:
        next(parsed)
    assert bad.value.number == 3
    assert "not a valid OrderPlaced" in str(bad.value)


async def producer() -> tuple[InMemoryTransport, EventProducer]:
    transport = InMemoryTransport()
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec("orders", 2)])
    return transport, EventProducer(transport, InMemorySchemaRegistryClient())


async def test_nothing_is_sent_when_any_event_of_the_window_is_too_big() -> None:
    transport, events = await producer()
    inputs = [*items(10), Numbered(11, order().model_copy(update={"account_id": "x" * 2_000_000}))]
    async with events:
        done = await send_checked(events, "orders", inputs, batch=3, window_bytes=2**23)
    assert isinstance(done.error, BadInputError) and done.error.number == 11
    assert done.sent == 0 and done.records == [] and transport.records("orders") == []
    assert done.explain("stdin line").startswith("stdin line 11: the encoded event is ")
    assert done.explain("stdin line").endswith("; make it smaller; nothing was sent")


async def test_a_long_input_is_sent_window_by_window_up_to_the_bad_event() -> None:
    transport, events = await producer()
    inputs = [*items(5), Numbered(6, order().model_copy(update={"account_id": "x" * 2_000_000}))]
    async with events:
        size = await size_checker(events, "orders")(inputs[0])
        done = await send_checked(
            events, "orders", inputs, batch=1, window_bytes=2 * size + size // 2
        )
    assert isinstance(done.error, BadInputError) and done.error.number == 6
    assert done.sent == len(done.records) == 4 and done.last_sent == 4 and done.first_unsent == 5
    assert len(transport.records("orders")) == 4
    assert done.explain("stdin line").endswith(
        "; sent 4 event(s), up to stdin line 4; nothing from stdin line 5 on was sent"
    )


async def test_a_failed_send_says_where_to_resume() -> None:
    _, events = await producer()
    async with events:
        done = await send_checked(events, "no-such-topic", items(3), batch=2, window_bytes=2**23)
    assert done.error is not None and done.failed_batch and done.sent == 0
    assert done.explain("stdin line").endswith(
        "; nothing was acknowledged; the batch from stdin line 1 may be written in part; "
        "resume from stdin line 1"
    )
