"""A consumer process for the SIGKILL test: appends each handled event id to a file.

Usage: python consumer_proc.py BOOTSTRAP REGISTRY_URL TOPIC GROUP OUT_FILE [DELAY_S]
DELAY_S is the work per event (default 0.001). SIGTERM stops it gracefully (finish
in-flight, commit, leave the group).
"""

from __future__ import annotations

import asyncio
import sys

from streaming.config import KafkaSettings, RegistrySettings
from streaming.consumer import EventConsumer
from streaming.events import OrderPlaced
from streaming.serde.client import SchemaRegistryClient
from streaming.transport.kafka import KafkaTransport


async def main(
    bootstrap: str, registry_url: str, topic: str, group: str, out: str, delay_s: str = "0.001"
) -> None:
    work_s = float(delay_s)
    transport = KafkaTransport(KafkaSettings(bootstrap_servers=bootstrap))
    async with SchemaRegistryClient(RegistrySettings(url=registry_url)) as registry:
        consumer = EventConsumer(
            transport,
            registry,
            topics=[topic],
            group_id=group,
            max_poll_records=100,
            poll_timeout_ms=200,
            session_timeout_ms=6_000,
        )
        # Opened once before consuming; line-buffered so each id reaches the OS at once.
        with open(out, "a", buffering=1) as sink:  # noqa: ASYNC230

            @consumer.handler(OrderPlaced)
            async def handle(event: OrderPlaced) -> None:
                sink.write(f"{event.event_id}\n")
                await asyncio.sleep(work_s)  # a little work per event, so signals land mid-stream

            consumer.install_signal_handlers()
            await consumer.run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))
