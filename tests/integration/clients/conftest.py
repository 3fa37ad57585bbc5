"""A registry service for tests whose clients live in other processes (CLI, SIGKILL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest_asyncio

from streaming.config import KafkaSettings, RegistrySettings
from streaming.registry.server import RegistryServer, ServerSettings
from streaming.serde.client import SchemaRegistryClient


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def registry_url(kafka_settings: KafkaSettings) -> AsyncIterator[str]:
    """Our registry service, in-process on the session loop, on its own store topic."""
    settings = ServerSettings(port=0, topic=f"_schemas-clients-{uuid.uuid4().hex[:10]}")
    server = RegistryServer(settings, kafka=kafka_settings)
    await server.start()
    try:
        yield server.url
    finally:
        await server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def http_registry(registry_url: str) -> AsyncIterator[SchemaRegistryClient]:
    async with SchemaRegistryClient(RegistrySettings(url=registry_url)) as client:
        yield client
