"""A real broker, a real registry service on its own ``_schemas`` topic, fresh data topics."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from streaming.config import KafkaSettings, RegistrySettings
from streaming.registry.server import RegistryServer, ServerSettings
from streaming.serde.client import SchemaRegistryClient
from streaming.transport.base import TopicSpec
from streaming.transport.kafka import KafkaTransport

TopicMaker = Callable[[], Awaitable[str]]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def registry_url(kafka_settings: KafkaSettings) -> AsyncIterator[str]:
    """Our registry service, in-process, backed by the real broker."""
    settings = ServerSettings(port=0, topic=f"_schemas-serde-{uuid.uuid4().hex[:10]}")
    server = RegistryServer(settings, kafka=kafka_settings)
    await server.start()
    try:
        yield server.url
    finally:
        await server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def registry(registry_url: str) -> AsyncIterator[SchemaRegistryClient]:
    async with SchemaRegistryClient(RegistrySettings(url=registry_url)) as client:
        yield client


@pytest.fixture(scope="session")
def kafka(kafka_settings: KafkaSettings) -> KafkaTransport:
    return KafkaTransport(kafka_settings)


@pytest_asyncio.fixture(loop_scope="session")
async def new_topic(kafka: KafkaTransport) -> AsyncIterator[TopicMaker]:
    """``await new_topic()`` -> a fresh single-partition topic, deleted after the test."""
    admin = kafka.admin()
    await admin.start()
    created: list[str] = []

    async def make() -> str:
        name = f"serde-{uuid.uuid4().hex[:10]}"
        await admin.create_topics([TopicSpec(name)])
        created.append(name)
        return name

    try:
        yield make
    finally:
        if created:
            await admin.delete_topics(created)
        await admin.stop()
