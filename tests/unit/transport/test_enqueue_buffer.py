"""The Kafka transport's enqueue buffer on a fake batch API: per-batch settlement."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from streaming.errors import TransportError
from streaming.transport._enqueue import EnqueueBuffer
from streaming.transport.base import OutgoingRecord


@dataclass
class FakeBuilder:
    """aiokafka's ``BatchBuilder`` as the buffer uses it: ``capacity`` records a batch."""

    capacity: int
    records: list[bytes | None] = field(default_factory=list)

    def append(self, *, timestamp: Any, key: Any, value: Any, headers: list[Any]) -> Any:
        if len(self.records) == self.capacity:
            return None
        self.records.append(value)
        return type("Meta", (), {"offset": len(self.records) - 1, "timestamp": 7})()

    def size(self) -> int:
        return 0

    def close(self) -> None:
        pass


@dataclass
class Acked:
    topic: str
    partition: int
    offset: int
    timestamp: int = -1


class FakeBroker:
    """``send_batch``: acknowledges (or refuses, or raises) batches in submission order."""

    def __init__(self, *, capacity: int = 3, refuse: bool = False, raises: bool = False):
        self.capacity, self.refuse, self.raises = capacity, refuse, raises
        self.next_offset = 0
        self.batches: list[FakeBuilder] = []

    def create_batch(self) -> FakeBuilder:
        return FakeBuilder(self.capacity)

    async def send_batch(self, builder: FakeBuilder, topic: str, partition: int) -> Any:
        if self.raises:
            raise RuntimeError("no leader")
        self.batches.append(builder)
        acked: asyncio.Future[Acked] = asyncio.get_running_loop().create_future()
        if self.refuse:
            acked.set_exception(RuntimeError("MessageSizeTooLarge"))
        else:
            acked.set_result(Acked(topic, partition, self.next_offset))
            self.next_offset += len(builder.records)
        return acked


def translate(exc: BaseException, what: str) -> TransportError:
    return TransportError(f"{what}: {exc}")


def buffer_for(broker: FakeBroker, oversized: set[bytes] | None = None) -> EnqueueBuffer:
    def check_size(record: OutgoingRecord) -> None:
        if record.value in (oversized or set()):
            raise TransportError("record exceeds max_request_size")

    return EnqueueBuffer(
        create_batch=broker.create_batch,
        send_batch=broker.send_batch,
        translate=translate,
        check_size=check_size,
    )


class Tally:
    """A ``settled`` listener: every call it got."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, BaseException | None]] = []

    def __call__(self, topic: str, count: int, error: BaseException | None) -> None:
        self.calls.append((topic, count, error))


async def test_futures_get_their_offsets_and_the_listener_hears_once_per_batch() -> None:
    broker, tally = FakeBroker(capacity=3), Tally()
    buffer = buffer_for(broker)
    deliveries = [await buffer.add(OutgoingRecord("t", b"%d" % i), 0, tally) for i in range(7)]
    await buffer.drain()
    metas = await asyncio.gather(*deliveries)
    assert [m.offset for m in metas] == list(range(7))
    assert [len(b.records) for b in broker.batches] == [3, 3, 1]
    assert tally.calls == [("t", 3, None), ("t", 3, None), ("t", 1, None)]


async def test_records_of_two_listeners_in_one_batch_are_told_apart() -> None:
    broker, first, second = FakeBroker(capacity=10), Tally(), Tally()
    buffer = buffer_for(broker)
    deliveries = [
        await buffer.add(OutgoingRecord("t", b"a"), 0, first),
        await buffer.add(OutgoingRecord("t", b"b"), 0, first),
        await buffer.add(OutgoingRecord("t", b"c"), 0, second),
        await buffer.add(OutgoingRecord("t", b"d"), 0, None),
        await buffer.add(OutgoingRecord("t", b"e"), 0, first),
    ]
    await buffer.drain()
    await asyncio.gather(*deliveries)
    assert first.calls == [("t", 2, None), ("t", 1, None)]
    assert second.calls == [("t", 1, None)]


@pytest.mark.parametrize("how", ["refused", "raised"])
async def test_a_refused_batch_fails_each_future_and_is_counted_as_failed(how: str) -> None:
    broker, tally = FakeBroker(refuse=how == "refused", raises=how == "raised"), Tally()
    buffer = buffer_for(broker)
    deliveries = [await buffer.add(OutgoingRecord("t", b"x"), 2, tally) for _ in range(2)]
    await buffer.drain()
    outcomes = await asyncio.gather(*deliveries, return_exceptions=True)
    assert all(isinstance(o, TransportError) for o in outcomes)
    assert "send to t[2]" in str(outcomes[0])
    [(topic, count, error)] = tally.calls
    assert (topic, count) == ("t", 2) and error is outcomes[0]


async def test_a_record_too_large_raises_at_enqueue_and_is_never_reported() -> None:
    broker, tally = FakeBroker(), Tally()
    buffer = buffer_for(broker, oversized={b"huge"})
    with pytest.raises(TransportError, match="max_request_size"):
        await buffer.add(OutgoingRecord("t", b"huge"), 0, tally)
    delivery = await buffer.add(OutgoingRecord("t", b"fine"), 0, tally)
    await buffer.drain()
    assert (await delivery).offset == 0
    assert tally.calls == [("t", 1, None)]
