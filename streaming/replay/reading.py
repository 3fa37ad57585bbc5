"""Read exact offset ranges of partitions: the one loop every replay tool shares."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping

from streaming.replay.errors import ReplayError
from streaming.telemetry import global_instruments, metric_attributes
from streaming.transport.base import ConsumerTransport, Record, TopicPartition

OffsetRange = tuple[int, int]
"""``(start, end)``: offsets ``start <= offset < end``."""


async def partition_extents(
    consumer: ConsumerTransport, topic: str, partitions: Iterable[int] | None = None
) -> dict[TopicPartition, OffsetRange]:
    """``(log start, log end)`` of each partition of ``topic`` (or of ``partitions``)."""
    parts = sorted(partitions if partitions is not None else await consumer.partitions_for(topic))
    tps = [TopicPartition(topic, p) for p in parts]
    begin = await consumer.beginning_offsets(tps)
    end = await consumer.end_offsets(tps)
    return {tp: (begin[tp], end[tp]) for tp in tps}


async def iter_range(
    consumer: ConsumerTransport,
    ranges: Mapping[TopicPartition, OffsetRange],
    *,
    max_records: int = 500,
    poll_timeout_ms: int = 200,
    stall_timeout_s: float = 30.0,
) -> AsyncIterator[dict[TopicPartition, list[Record]]]:
    """Assign the partitions, seek to each start and yield batches until every end is reached.

    Records come in per-partition order and only inside their range; a partition is paused
    once its position passes its end, so gaps (compaction, aborted transactions, control
    markers) never make the loop wait for offsets that will not come. Raises
    :class:`ReplayError` when no partition advances for ``stall_timeout_s``. What it
    reads counts as ``messaging.client.consumed.messages`` on the global meter provider.
    """
    consumed = global_instruments().consumed
    todo = {tp: r for tp, r in ranges.items() if r[1] > r[0]}
    if not todo:
        return
    consumer.assign(sorted(todo))
    for tp, (start, _end) in todo.items():
        consumer.seek(tp, start)
    loop = asyncio.get_running_loop()
    last_progress = loop.time()
    positions = dict.fromkeys(todo, -1)
    while todo:
        batch = await consumer.poll(timeout_ms=poll_timeout_ms, max_records=max_records)
        out: dict[TopicPartition, list[Record]] = {}
        for tp, records in batch.items():
            if tp not in todo:
                continue
            start, end = todo[tp]
            kept = [r for r in records if start <= r.offset < end]
            if kept:
                out[tp] = kept
                consumed.add(
                    len(kept), metric_attributes(tp.topic, operation="poll", partition=tp.partition)
                )
        for tp in list(todo):
            position = await consumer.position(tp)
            if position != positions[tp]:
                positions[tp] = position
                last_progress = loop.time()
            if position >= todo[tp][1]:
                consumer.pause(tp)
                del todo[tp]
        if out:
            yield out
        elif todo and loop.time() - last_progress > stall_timeout_s:
            stuck = ", ".join(f"{tp}@{positions[tp]}<{todo[tp][1]}" for tp in sorted(todo))
            raise ReplayError(
                f"reading stalled for {stall_timeout_s:.0f}s at {stuck}; is the broker "
                "healthy and the range still within the log?"
            )


__all__ = ["OffsetRange", "iter_range", "partition_extents"]
