"""Bulk sends for ``streaming produce``: numbered events, checked in full, in bounded windows.

Every event of a window is checked (model validation, then the encoded record's size
against the producer's ``max_request_size``) before any of it is sent, so a bad line
never half-sends a window. Input that fits in one window is checked completely before
anything is sent; a longer stream (stdin can be endless) is sent window by window, and a
bad line stops it at a known place: :class:`Sent` says how many went out and where to
resume.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from streaming.errors import StreamingError
from streaming.events import Event
from streaming.producer import EventProducer
from streaming.serde.errors import SerializeError

DEFAULT_WINDOW_MB = 8
# A W3C traceparent like the one send_many adds, so the size check counts it too.
_TRACE_ROOM = (("traceparent", b"00-" + b"0" * 32 + b"-" + b"0" * 16 + b"-01"),)


@dataclass(frozen=True, slots=True)
class Numbered:
    """An event and where it came from: its stdin line, or its position among --fake events."""

    number: int
    event: Event


class BadInputError(StreamingError):
    """Input ``number`` cannot be sent (the message says why); nothing of its window was."""

    def __init__(self, number: int, message: str) -> None:
        super().__init__(message)
        self.number = number


def parse_lines(cls: type[Event], lines: Iterable[str]) -> Iterator[Numbered]:
    """JSON lines of ``cls``, parsed lazily; blank lines are skipped but keep their number."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = cls.model_validate_json(line)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BadInputError(
                number, f"not a valid {cls.__name__}: {where}: {first['msg']}"
            ) from exc
        yield Numbered(number, event)


def numbered(events: Iterable[Event]) -> Iterator[Numbered]:
    return (Numbered(number, event) for number, event in enumerate(events, start=1))


async def windows(
    items: Iterable[Numbered],
    size_of: Callable[[Numbered], Awaitable[int]],
    limit_bytes: int,
) -> AsyncIterator[list[Numbered]]:
    """Runs of ``items`` whose sizes add up to at most ``limit_bytes`` (one item at least).

    ``size_of`` checks an item and returns its encoded size, or raises for an item that
    must not be sent; a run is yielded only after every item in it passed.
    """
    window: list[Numbered] = []
    held = 0
    for item in items:
        size = await size_of(item)
        if window and held + size > limit_bytes:
            yield window
            window, held = [], 0
        window.append(item)
        held += size
    if window:
        yield window


@dataclass
class Sent:
    """What a bulk send did: how many were acknowledged (with their coordinates when
    asked for), and the error that stopped it."""

    sent: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    last_sent: int = 0  # number of the last acknowledged item
    failed_batch: bool = False  # the error came from a send, not from a check
    error: StreamingError | None = None

    @property
    def first_unsent(self) -> int:
        return self.last_sent + 1

    def explain(self, label: str) -> str:
        """The error, how many were sent and where to resume, e.g. ``stdin line 601``."""
        error, sent, first = self.error, self.sent, self.first_unsent
        where = f"{label} {error.number}: " if isinstance(error, BadInputError) else ""
        done = f"sent {sent} event(s), up to {label} {self.last_sent}" if sent else ""
        if self.failed_batch:
            return (
                f"{where}{error}; {done or 'nothing was acknowledged'}; the batch from "
                f"{label} {first} may be written in part; resume from {label} {first}"
            )
        if done:
            return f"{where}{error}; {done}; nothing from {label} {first} on was sent"
        return f"{where}{error}; nothing was sent"


def size_checker(producer: EventProducer, topic: str) -> Callable[[Numbered], Awaitable[int]]:
    """Encode an item as ``producer`` would send it: its size, or why it cannot be sent."""
    from streaming.transport.kafka import (
        DEFAULT_MAX_REQUEST_SIZE,
        KafkaProducerTransport,
        record_size,
    )

    transport = producer.transport
    limit = (
        transport.max_request_size
        if isinstance(transport, KafkaProducerTransport)
        else DEFAULT_MAX_REQUEST_SIZE
    )

    async def size_of(item: Numbered) -> int:
        try:
            record = await producer.build(topic, item.event, headers=_TRACE_ROOM)
        except SerializeError as exc:
            raise BadInputError(item.number, str(exc)) from exc
        size = record_size(record)
        if size > limit:
            raise BadInputError(
                item.number,
                f"the encoded event is {size} bytes, over the producer's max_request_size "
                f"of {limit} bytes; make it smaller",
            )
        return size

    return size_of


async def send_checked(
    producer: EventProducer,
    topic: str,
    items: Iterable[Numbered],
    *,
    batch: int,
    window_bytes: int,
    on_sent: Callable[[int], None] = lambda n: None,
    keep_records: bool = True,
) -> Sent:
    """Check each window of ``items`` in full, then send it in batches of ``batch``.

    Stops at the first error, which is returned in :class:`Sent` with the progress made.
    Without ``keep_records`` only the count is kept, so memory stays bounded by the window.
    """
    done = Sent()
    try:
        async for window in windows(items, size_checker(producer, topic), window_bytes):
            for start in range(0, len(window), batch):
                chunk = window[start : start + batch]
                done.failed_batch = True
                metas = await producer.send_many(topic, [i.event for i in chunk])
                done.failed_batch = False
                done.sent += len(chunk)
                if keep_records:
                    done.records.extend(
                        {
                            "event_id": str(i.event.metadata.event_id),
                            "partition": m.partition,
                            "offset": m.offset,
                        }
                        for i, m in zip(chunk, metas, strict=True)
                    )
                done.last_sent = chunk[-1].number
                on_sent(len(chunk))
    except StreamingError as exc:
        done.error = exc
    return done


__all__ = [
    "DEFAULT_WINDOW_MB",
    "BadInputError",
    "Numbered",
    "Sent",
    "numbered",
    "parse_lines",
    "send_checked",
    "size_checker",
    "windows",
]
