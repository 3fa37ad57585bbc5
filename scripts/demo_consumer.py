"""The demo's billing service: consume OrderPlaced events with EventConsumer until caught up.

Usage::

    python scripts/demo_consumer.py --topic demo.orders --group demo-billing [--reject TSLA]

With ``--reject SYMBOL`` the handler plays a buggy release: it cannot price orders for
that symbol and fails *fatally*, so the consumer writes those records to the dead-letter
topic ``<topic>.<group>.dlq`` (with diagnostic ``x-*`` headers) and commits past them;
every other order is handled and committed. Without ``--reject`` it is the fixed release.

The program stops by itself once the group has caught up (no record of ``--topic`` is
left after its committed offsets), then prints one line: ``handled N, dead-lettered M``.
Settings come from the environment (``eval "$(streaming dev env)"``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from streaming import (
    EventConsumer,
    OrderPlaced,
    RetryPolicy,
    SchemaRegistryClient,
    configure_logging,
    load_settings,
)
from streaming.transport import TopicPartition, TransportFactory
from streaming.transport.kafka import KafkaTransport


class UnpriceableOrderError(Exception):
    """Billing has no price list for this symbol: retrying would fail the same way."""


async def caught_up(transport: TransportFactory, topic: str, group: str) -> bool:
    """True when no record of ``topic`` is left after the group's committed offsets."""
    admin, reader = transport.admin(), transport.consumer(group_id=None)
    await admin.start()
    await reader.start()
    try:
        committed = await admin.group_offsets(group)
        partitions = [TopicPartition(topic, p) for p in await reader.partitions_for(topic)]
        starts = await reader.beginning_offsets(partitions)
        ends = await reader.end_offsets(partitions)
        # Comparing committed offsets with the log end is not enough: a transactional
        # write (the redrive makes those) ends with a commit marker that takes an offset
        # but is never delivered. So read from where the group would resume (a partition
        # it never committed on: from its start) and see whether a record is left.
        reader.assign(partitions)
        for tp in partitions:
            reader.seek(tp, committed.get(tp, starts[tp]))
        for _ in range(10):  # each poll waits at most 200 ms
            if await reader.poll(timeout_ms=200, max_records=1):
                return False
            positions = {tp: await reader.position(tp) for tp in partitions}
            if all(positions[tp] >= ends[tp] for tp in partitions):
                return True
        return False
    finally:
        await reader.stop()
        await admin.stop()


async def main(topic: str, group: str, reject: str | None, timeout_s: float) -> int:
    settings = load_settings()
    configure_logging(settings.logging)
    transport = KafkaTransport(settings.kafka)
    # Failures of this type go straight to the DLQ instead of the retry topics.
    policy = RetryPolicy(fatal=(*RetryPolicy().fatal, UnpriceableOrderError))

    async with SchemaRegistryClient(settings.registry) as registry:
        consumer = EventConsumer(
            transport,
            registry,
            topics=[topic],
            group_id=group,
            retry_policy=policy,
            poll_timeout_ms=200,
            session_timeout_ms=6_000,
        )

        @consumer.handler(OrderPlaced)
        async def bill(order: OrderPlaced) -> None:
            if order.symbol == reject:
                raise UnpriceableOrderError(f"no price list for {order.symbol}")
            # A real service would write an invoice line here.

        # Run the consumer in the background and watch the group's progress.
        running = asyncio.create_task(consumer.run())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            while not await caught_up(transport, topic, group):
                if running.done() or loop.time() > deadline:
                    break
                await asyncio.sleep(0.5)  # poll
        finally:
            consumer.request_stop()  # finish the record in flight, commit, leave the group
            await running

    stats = consumer.stats
    print(f"handled {stats.handled}, dead-lettered {stats.dead_lettered}")
    if not await caught_up(transport, topic, group):
        print(f"error: {group} did not catch up on {topic} within {timeout_s}s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The demo's billing consumer.")
    parser.add_argument("--topic", required=True, help="the topic to consume")
    parser.add_argument("--group", required=True, help="the consumer group")
    parser.add_argument("--reject", metavar="SYMBOL", help="fail fatally on this symbol's orders")
    parser.add_argument("--timeout", type=float, default=30.0, help="give up after this long (s)")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.topic, args.group, args.reject, args.timeout)))
