"""A started consumer moves the process's startup objects out of the collector's way."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, sys
    from streaming.clients.consumer import EventConsumer
    from streaming.serde import InMemorySchemaRegistryClient
    from streaming.transport.base import TopicSpec
    from streaming.transport.memory import InMemoryTransport

    async def main(freeze):
        transport = InMemoryTransport()
        admin = transport.admin()
        await admin.start()
        await admin.create_topics([TopicSpec("t", 1, 1)])
        consumer = EventConsumer(
            transport, InMemorySchemaRegistryClient(), topics=["t"], group_id="g",
            create_failure_topics=False, freeze_heap_on_start=freeze,
        )
        before = gc.get_freeze_count()
        async with consumer:
            during = gc.get_freeze_count()
        print(before, during)

    asyncio.run(main(sys.argv[1] == "on"))
    """
)


def frozen_counts(setting: str) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, setting], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[-2]), int(out[-1])


def test_a_started_consumer_freezes_the_startup_heap_unless_told_not_to() -> None:
    before, during = frozen_counts("on")
    assert before == 0 and during > 10_000  # modules, schemas, SDKs
    assert frozen_counts("off") == (0, 0)
