"""pytest fixtures: in-memory clients per test, or a real Kafka + PostgreSQL (+ registry).

In-memory fixtures (no broker, no network; fresh per test):
- ``memory_transport``: an :class:`InMemoryTransport` that auto-creates topics on first use.
- ``memory_registry``: an :class:`InMemorySchemaRegistryClient`.
- ``memory_producer``: a started :class:`EventProducer` over those two.
- ``memory_consumer``: ``memory_consumer("orders", group_id="g", **options)`` -> an
  :class:`EventConsumer` over the same two, so it reads what ``memory_producer`` sends.

Real-stack fixtures (all lazy):
- ``streaming_stack``: :class:`StackEndpoints` for the session.
- ``kafka_settings`` / ``kafka_transport`` / ``kafka_admin``: clients for that broker.
- ``topic_factory``: ``await topic_factory(partitions=3, config={...})`` -> a fresh topic
  name, deleted after the test.
- ``database_settings`` / ``database``: PostgreSQL settings and a :class:`Database`.
- ``registry_url`` / ``schema_registry``: the stack's schema registry (or one served in
  this process on its own store topic) and a client for it. Subjects follow topics, so
  ``topic_factory`` gives each test its own schemas too.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import pytest
import pytest_asyncio
from pydantic import SecretStr

from streaming.clients.consumer import EventConsumer
from streaming.clients.producer import EventProducer
from streaming.config import DatabaseSettings, KafkaSettings, RegistrySettings
from streaming.db import Database
from streaming.serde.client import SchemaRegistryClient
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.testing.stack import StackEndpoints, ensure_stack
from streaming.transport.base import AdminTransport, TopicSpec
from streaming.transport.kafka import KafkaTransport
from streaming.transport.memory import InMemoryTransport

TopicFactory = Callable[..., Awaitable[str]]
ConsumerFactory = Callable[..., EventConsumer]


@pytest.fixture
def memory_transport() -> InMemoryTransport:
    return InMemoryTransport(auto_create_topics=True)


@pytest.fixture
def memory_registry() -> InMemorySchemaRegistryClient:
    return InMemorySchemaRegistryClient()


@pytest_asyncio.fixture
async def memory_producer(
    memory_transport: InMemoryTransport, memory_registry: InMemorySchemaRegistryClient
) -> AsyncIterator[EventProducer]:
    async with EventProducer(memory_transport, memory_registry) as producer:
        yield producer


@pytest.fixture
def memory_consumer(
    memory_transport: InMemoryTransport, memory_registry: InMemorySchemaRegistryClient
) -> ConsumerFactory:
    def make(*topics: str, group_id: str = "test", **options: Any) -> EventConsumer:
        return EventConsumer(
            memory_transport, memory_registry, topics=topics, group_id=group_id, **options
        )

    return make


@pytest.fixture(scope="session")
def streaming_stack() -> Iterator[StackEndpoints]:
    endpoints = ensure_stack()
    try:
        yield endpoints
    finally:
        endpoints.stop()


@pytest.fixture(scope="session")
def kafka_settings(streaming_stack: StackEndpoints) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=streaming_stack.bootstrap_servers)


@pytest.fixture(scope="session")
def kafka_transport(kafka_settings: KafkaSettings) -> KafkaTransport:
    return KafkaTransport(kafka_settings)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def kafka_admin(kafka_transport: KafkaTransport) -> AsyncIterator[AdminTransport]:
    admin = kafka_transport.admin()
    await admin.start()
    try:
        yield admin
    finally:
        await admin.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def topic_factory(kafka_admin: AdminTransport) -> AsyncIterator[TopicFactory]:
    created: list[str] = []

    async def make(
        partitions: int = 1,
        *,
        prefix: str = "test",
        config: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> str:
        topic = name or f"{prefix}-{uuid.uuid4().hex[:12]}"
        await kafka_admin.create_topics([TopicSpec(topic, partitions, 1, dict(config or {}))])
        created.append(topic)
        return topic

    yield make
    await kafka_admin.delete_topics(created)


@pytest.fixture(scope="session")
def database_settings(streaming_stack: StackEndpoints) -> DatabaseSettings:
    return DatabaseSettings(url=SecretStr(streaming_stack.database_url))


@pytest_asyncio.fixture(loop_scope="session")
async def database(database_settings: DatabaseSettings) -> AsyncIterator[Database]:
    db = Database(database_settings)
    try:
        yield db
    finally:
        await db.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def registry_url(
    streaming_stack: StackEndpoints, kafka_settings: KafkaSettings
) -> AsyncIterator[str]:
    """The stack's registry (reachable from subprocesses too), else one served here."""
    if streaming_stack.registry_url:
        yield streaming_stack.registry_url
        return
    from streaming.registry.server import RegistryServer, ServerSettings

    server = RegistryServer(
        ServerSettings(port=0, topic=f"_schemas-test-{uuid.uuid4().hex[:10]}"),
        kafka=kafka_settings,
    )
    await server.start()
    try:
        yield server.url
    finally:
        await server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def schema_registry(registry_url: str) -> AsyncIterator[SchemaRegistryClient]:
    async with SchemaRegistryClient(RegistrySettings(url=registry_url)) as client:
        yield client
