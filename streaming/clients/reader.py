"""Read a topic without a consumer group: nothing is committed, nothing is joined.

The operator tools (``streaming consume``, ``streaming dlq list|show``) look at records;
they must never move a group's offsets or trigger a rebalance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from streaming.telemetry import global_instruments, metric_attributes
from streaming.transport.base import IsolationLevel, Record, TopicPartition, TransportFactory


async def read_topic(
    transport: TransportFactory,
    topic: str,
    *,
    from_beginning: bool,
    max_records: int | None,
    idle_timeout_s: float | None,
    on_record: Callable[[Record], Awaitable[None]],
    to_end: bool = False,
    isolation_level: IsolationLevel = "read_committed",
) -> int:
    """Feed ``topic``'s records to ``on_record``; returns how many were read.

    Stops after ``max_records``, after ``idle_timeout_s`` without records, or (``to_end``)
    once every partition reached the end offset it had when reading started.
    """
    consumed = global_instruments().consumed
    consumer = transport.consumer(group_id=None, isolation_level=isolation_level)
    await consumer.start()
    try:
        parts = sorted(await consumer.partitions_for(topic))
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        ends = await consumer.end_offsets(tps) if to_end else {}
        count = 0
        loop = asyncio.get_running_loop()
        last = loop.time()
        while max_records is None or count < max_records:
            if to_end:
                positions = {tp: await consumer.position(tp) for tp in tps}
                if all(positions[tp] >= ends[tp] for tp in tps):
                    break
            batch = await consumer.poll(timeout_ms=500)
            if not batch:
                if idle_timeout_s is not None and loop.time() - last > idle_timeout_s:
                    break
                continue
            last = loop.time()
            for records in batch.values():
                for record in records:
                    if max_records is not None and count >= max_records:
                        break
                    await on_record(record)
                    consumed.add(1, metric_attributes(topic, operation="poll"))
                    count += 1
        return count
    finally:
        await consumer.stop()


__all__ = ["read_topic"]
