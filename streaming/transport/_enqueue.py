"""Enqueue-only sends of the Kafka transport: records into per-partition batches, a future each.

aiokafka's per-record ``send()`` costs a coroutine, a message-accumulator lookup and a
future chain per record; its batch API (a ``BatchBuilder`` handed over with
``send_batch``) costs about half the CPU. :class:`EnqueueBuffer` gives the per-record
shape (``future = await transport.enqueue(record)``) on top of the batch API: a record
is appended to its partition's open batch at once; one task per partition hands the
batches to aiokafka in order (so per-partition order holds and a stalled leader holds
back only its own partition) and resolves each record's future from its batch's.

A batch is handed over once it holds ``hand_over_bytes`` (aiokafka's default batch size)
and nothing waits before it, so the network works while the caller goes on appending;
while aiokafka still holds a partition's previous batch, records gather in the open one
(up to the producer's ``max_batch_size``): the batches grow with the load, as linger
would make them. A partition with ``max_ready`` closed batches waiting makes ``enqueue``
wait (the buffer is full).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from streaming.errors import TransportError
from streaming.transport.base import OutgoingRecord, RecordMetadata, Settled

Delivery = asyncio.Future[RecordMetadata]
# (builder, topic, partition) -> the future of the batch's acknowledgement
SendBatch = Callable[[Any, str, int], Awaitable["asyncio.Future[Any]"]]
Translate = Callable[[BaseException, str], TransportError]


@dataclass(slots=True)
class _Batch:
    builder: Any
    entries: list[tuple[Delivery, Any]] = field(default_factory=list)  # (future, append meta)
    # Whom to tell of the batch's fate: runs of (listener, records), in append order.
    settled: list[list[Any]] = field(default_factory=list)

    def tell(self, topic: str, error: BaseException | None) -> None:
        for listener, count in self.settled:
            listener(topic, count, error)


@dataclass(slots=True)
class _Partition:
    topic: str
    partition: int
    open: _Batch | None = None
    ready: deque[_Batch] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    space: asyncio.Event = field(default_factory=asyncio.Event)

    def close_open(self) -> None:
        if self.open is not None:
            self.ready.append(self.open)
            self.open = None

    def pending(self) -> bool:
        return self.open is not None or bool(self.ready) or self.task is not None


class EnqueueBuffer:
    """Open batches per partition and the tasks that hand them to the producer."""

    def __init__(
        self,
        *,
        create_batch: Callable[[], Any],
        send_batch: SendBatch,
        translate: Translate,
        check_size: Callable[[OutgoingRecord], None],
        max_ready: int = 4,
        hand_over_bytes: int = 16_384,
    ) -> None:
        self._create_batch = create_batch
        self._send_batch = send_batch
        self._translate = translate
        self._check_size = check_size
        self._max_ready = max_ready
        self._hand_over_bytes = hand_over_bytes
        self._partitions: dict[tuple[str, int], _Partition] = {}

    async def add(
        self, record: OutgoingRecord, partition: int, settled: Settled | None = None
    ) -> Delivery:
        """Append ``record`` to ``partition``'s open batch; its delivery future.

        ``settled`` hears of it with its batch (a run of records with the same listener
        is one call). A record too large for any batch raises here (``check_size``, run
        only when a batch is opened: a record that fit one fits the request).
        """
        key = (record.topic, partition)
        part = self._partitions.get(key)
        if part is None:
            part = self._partitions[key] = _Partition(record.topic, partition)
        while len(part.ready) >= self._max_ready:  # the buffer is full: wait for room
            part.space.clear()
            await part.space.wait()
        headers = list(record.headers)
        batch, meta = part.open, None
        if batch is not None:
            meta = batch.builder.append(
                timestamp=record.timestamp_ms, key=record.key, value=record.value, headers=headers
            )
            if meta is None:  # full
                part.close_open()
        if batch is None or meta is None:
            self._check_size(record)
            batch = part.open = _Batch(self._create_batch())
            meta = batch.builder.append(
                timestamp=record.timestamp_ms, key=record.key, value=record.value, headers=headers
            )
        loop = asyncio.get_running_loop()
        delivery: Delivery = loop.create_future()
        batch.entries.append((delivery, meta))
        if settled is not None:
            runs = batch.settled
            if runs and runs[-1][0] is settled:
                runs[-1][1] += 1
            else:
                runs.append([settled, 1])
        if part.task is None:
            part.task = loop.create_task(self._run(part))
        if not part.ready and batch.builder.size() >= self._hand_over_bytes:
            # Nothing waits before it: hand it over now and let the sender run, so the
            # network works while the caller goes on appending (as aiokafka's own
            # ``send()`` yields on a full batch). Under backpressure batches grow instead.
            part.close_open()
            await asyncio.sleep(0)
        return delivery

    async def drain(self) -> None:
        """Hand every enqueued record to the producer (without waiting for acks)."""
        while busy := [p for p in self._partitions.values() if p.pending()]:
            for part in busy:
                if part.task is None:
                    part.task = asyncio.get_running_loop().create_task(self._run(part))
            await asyncio.gather(*(p.task for p in busy if p.task is not None))

    def fail_all(self, exc: TransportError) -> None:
        """Fail what was not handed over yet (an aborted transaction)."""
        for part in self._partitions.values():
            part.close_open()
            while part.ready:
                _fail(part, part.ready.popleft(), exc)
            part.space.set()

    async def _run(self, part: _Partition) -> None:
        try:
            while True:
                if not part.ready:
                    part.close_open()
                    if not part.ready:
                        return
                batch = part.ready.popleft()
                part.space.set()
                await self._submit(part, batch)
        finally:
            part.task = None

    async def _submit(self, part: _Partition, batch: _Batch) -> None:
        batch.builder.close()
        try:
            acked = await self._send_batch(batch.builder, part.topic, part.partition)
        except Exception as exc:
            _fail(part, batch, self._translate(exc, f"send to {part.topic}[{part.partition}]"))
            return
        acked.add_done_callback(partial(self._resolve, part, batch))

    def _resolve(self, part: _Partition, batch: _Batch, acked: Any) -> None:
        if acked.cancelled():
            for delivery, _ in batch.entries:
                delivery.cancel()
            return
        exc = acked.exception()
        if exc is not None:
            _fail(part, batch, self._translate(exc, f"send to {part.topic}[{part.partition}]"))
            return
        done = acked.result()
        topic, partition, base, stamp = done.topic, done.partition, done.offset, done.timestamp
        unstamped = stamp in (None, -1)
        for delivery, meta in batch.entries:
            if not delivery.done():
                delivery.set_result(
                    RecordMetadata(
                        topic, partition, base + meta.offset, meta.timestamp if unstamped else stamp
                    )
                )
        batch.tell(part.topic, None)  # the awaiting code runs after this callback


def _fail(part: _Partition, batch: _Batch, exc: TransportError) -> None:
    for delivery, _ in batch.entries:
        if not delivery.done():
            delivery.set_exception(exc)
    batch.tell(part.topic, exc)


__all__ = ["EnqueueBuffer"]
