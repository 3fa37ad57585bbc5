"""``CompactedTable``: the latest value per key of a compacted topic, as a local read model.

It reads the topic from the beginning up to the high watermark seen at start (so after
``start()`` it reflects at least everything written before), then :meth:`follow` keeps
applying new records. Tombstones (``value=None``) delete keys. Reading uses
``read_committed`` so aborted transactional writes never show.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Self

import structlog

from streaming.core.lifecycle import AsyncService, cancel_and_wait
from streaming.errors import TransportError
from streaming.replay.kv import KeyValueView
from streaming.replay.reading import iter_range, partition_extents
from streaming.transport.base import ConsumerTransport, Record, TopicPartition, TransportFactory

log = structlog.get_logger(__name__)

UpdateCallback = Callable[[bytes, bytes | None], Awaitable[None]]


class CompactedTable(KeyValueView, AsyncService):
    """Latest value per key of ``topic``; keys and values are the raw bytes."""

    def __init__(
        self,
        transport: TransportFactory,
        topic: str,
        *,
        on_update: UpdateCallback | None = None,
        stall_timeout_s: float = 30.0,
    ) -> None:
        self._transport = transport
        self.topic = topic
        self._on_update = on_update
        self._stall_timeout_s = stall_timeout_s
        super().__init__()
        self._positions: dict[TopicPartition, int] = {}
        self._consumer: ConsumerTransport | None = None
        self._follower: asyncio.Task[None] | None = None
        self.records_applied = 0
        self.null_keys_ignored = 0

    # -- lifecycle
    async def start(self, *, follow: bool = False) -> Self:
        """Build the table up to the current high watermark; optionally keep following."""
        consumer = self._transport.consumer(
            group_id=None, isolation_level="read_committed", max_poll_records=2000
        )
        await consumer.start()
        self._consumer = consumer
        try:
            await self._build(consumer)
        except BaseException:
            await self.stop()
            raise
        if follow:
            self._follower = asyncio.create_task(self.follow(), name=f"follow-{self.topic}")
        return self

    async def stop(self) -> None:
        await cancel_and_wait(self._follower)
        self._follower = None
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    def _require_consumer(self) -> ConsumerTransport:
        if self._consumer is None:
            raise TransportError(f"table {self.topic!r} is not started; call start() first")
        return self._consumer

    async def _build(self, consumer: ConsumerTransport) -> None:
        extents = await partition_extents(consumer, self.topic)
        tps = list(extents)
        async for batch in iter_range(
            consumer, extents, max_records=2000, stall_timeout_s=self._stall_timeout_s
        ):
            for records in batch.values():
                for record in records:
                    await self._apply(record)
        for tp, (_begin, end) in extents.items():
            self._positions[tp] = max(end, self._positions.get(tp, 0))
        # Every partition is now at its high watermark: read on from there.
        consumer.assign(tps)
        consumer.resume(*tps)  # iter_range paused each partition at its end
        for tp in tps:
            consumer.seek(tp, self._positions[tp])
        log.debug("compacted table built", topic=self.topic, keys=len(self._data))

    # -- updates
    async def _apply(self, record: Record) -> None:
        self._positions[record.tp] = record.offset + 1
        self.records_applied += 1
        if record.key is None:
            self.null_keys_ignored += 1  # compaction needs keys; such records are not table rows
            return
        if record.value is None:
            self._data.pop(record.key, None)
        else:
            self._data[record.key] = record.value
        if self._on_update is not None:
            await self._on_update(record.key, record.value)

    async def poll_once(self, timeout_ms: int = 200) -> int:
        """Apply whatever new records arrive within ``timeout_ms``; how many were applied."""
        consumer = self._require_consumer()
        batch = await consumer.poll(timeout_ms=timeout_ms)
        count = 0
        for records in batch.values():
            for record in records:
                await self._apply(record)
                count += 1
        return count

    async def follow(self) -> None:
        """Apply updates until cancelled."""
        while True:
            await self.poll_once(timeout_ms=500)

    async def catch_up(self, timeout_s: float = 30.0) -> None:
        """Return once the table reflects everything committed to the topic by now."""
        consumer = self._require_consumer()
        tps = sorted(self._positions)
        end = await consumer.end_offsets(tps)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= end[tp] for tp in tps):
                return
            if loop.time() > deadline:
                raise TransportError(f"table {self.topic!r} did not catch up in {timeout_s}s")
            if self._follower is not None:
                await asyncio.sleep(0.05)  # poll: the follower task is reading
            else:
                await self.poll_once()

    # -- reads

    @property
    def positions(self) -> dict[TopicPartition, int]:
        """The next offset the table will apply, per partition."""
        return dict(self._positions)


__all__ = ["CompactedTable", "UpdateCallback"]
