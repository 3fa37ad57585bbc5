"""Registry servers on a real broker, each test with its own ``_schemas`` topic."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from streaming.config import KafkaSettings
from streaming.registry.server import RegistryServer, ServerSettings
from streaming.transport.kafka import KafkaTransport

ServerFactory = Callable[..., Awaitable[RegistryServer]]


@pytest.fixture
def schemas_topic() -> str:
    return f"_schemas-test-{uuid.uuid4().hex[:10]}"


@pytest_asyncio.fixture
async def start_registry(
    kafka_settings: KafkaSettings, schemas_topic: str
) -> AsyncIterator[ServerFactory]:
    """``await start_registry()`` -> a caught-up server on this test's topic (stopped after)."""
    started: list[RegistryServer] = []

    async def start(**overrides: object) -> RegistryServer:
        settings = ServerSettings(port=0, topic=schemas_topic, **overrides)  # type: ignore[arg-type]
        server = RegistryServer(settings, kafka=kafka_settings)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()
    admin = KafkaTransport(kafka_settings).admin()
    await admin.start()
    try:
        await admin.delete_topics([schemas_topic])
    finally:
        await admin.stop()
