"""The ``_schemas`` store's fencing and rebuild logic, over the in-memory transport."""

from __future__ import annotations

import asyncio
import json

from streaming.registry.kafka_store import KafkaSchemaStore
from streaming.registry.model import CompatibilityLevel, SchemaRequest
from streaming.registry.service import RegistryService
from streaming.transport.memory import InMemoryTransport


def schema(n: int) -> SchemaRequest:
    fields = [{"name": f"f{n}", "type": "string"}]
    return SchemaRequest(json.dumps({"type": "record", "name": f"R{n}", "fields": fields}))


async def test_state_is_rebuilt_from_the_topic_on_restart() -> None:
    transport = InMemoryTransport()
    first = KafkaSchemaStore(transport, topic="_schemas")
    await first.start()
    service = RegistryService(first)
    assert await service.register("a", schema(1)) == 1
    assert await service.register("b", schema(2)) == 2
    await service.set_config("a", CompatibilityLevel.NONE)
    await service.delete_version("b", 1)
    before = first.state.snapshot()
    await first.stop()

    second = KafkaSchemaStore(transport, topic="_schemas")
    await second.start()
    await second.wait_ready(5)
    assert second.state.snapshot() == before
    assert await RegistryService(second).register("c", schema(3)) == 3
    await second.stop()


async def test_two_instances_never_assign_one_id_twice() -> None:
    transport = InMemoryTransport()
    one = KafkaSchemaStore(transport, topic="_schemas")
    two = KafkaSchemaStore(transport, topic="_schemas")
    await one.start()
    await two.start()
    services = [RegistryService(one), RegistryService(two)]
    await services[0].set_config(None, CompatibilityLevel.NONE)
    results = await asyncio.gather(
        *(services[n % 2].register(f"s{n % 5}", schema(n)) for n in range(40))
    )
    assert sorted(results) == list(range(1, 41))
    # the same schema through both instances gets one id
    same = await asyncio.gather(
        services[0].register("x", schema(1)), services[1].register("y", schema(1))
    )
    assert same[0] == same[1] == results[1]
    await services[0].register("sync", schema(99))
    await services[1].register("sync", schema(99))
    assert one.state.snapshot() == two.state.snapshot()
    assert one.fences + two.fences > 0
    await one.stop()
    await two.stop()
