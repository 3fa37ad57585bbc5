"""A started consumer keeps the garbage collector out of its loop, unless told not to."""

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

    async def main(tune):
        transport = InMemoryTransport()
        admin = transport.admin()
        await admin.start()
        await admin.create_topics([TopicSpec("t", 1, 1)])
        consumer = EventConsumer(
            transport, InMemorySchemaRegistryClient(), topics=["t"], group_id="g",
            create_failure_topics=False, tune_gc_on_start=tune,
        )
        before = (gc.get_freeze_count(), gc.get_threshold()[0])
        async with consumer:
            during = (gc.get_freeze_count(), gc.get_threshold()[0])
        print(*before, *during)

    if sys.argv[2] != "default":
        gc.set_threshold(int(sys.argv[2]))
    asyncio.run(main(sys.argv[1] == "on"))
    """
)


def gc_state(setting: str, threshold: str = "default") -> list[int]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, setting, threshold],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [int(v) for v in out[-4:]]


def test_a_started_consumer_freezes_the_startup_heap_and_collects_young_objects_less_often() -> (
    None
):
    frozen_before, young_before, frozen_during, young_during = gc_state("on")
    assert frozen_before == 0 and frozen_during > 10_000  # modules, schemas, SDKs
    assert young_before == 700 and young_during == 50_000


def test_an_application_s_higher_threshold_stays_and_the_option_turns_it_all_off() -> None:
    assert gc_state("on", "90000")[3] == 90_000
    assert gc_state("off") == [0, 700, 0, 700]
