"""An in-memory cluster per test, with helpers to create topics and produce records."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence

import pytest

from streaming.transport.base import AdminTransport, OutgoingRecord, TopicSpec
from streaming.transport.memory import InMemoryTransport


class Cluster:
    def __init__(self, transport: InMemoryTransport, admin: AdminTransport) -> None:
        self.transport = transport
        self.admin = admin

    async def topic(
        self, name: str, partitions: int = 1, config: Mapping[str, str] | None = None
    ) -> str:
        await self.admin.create_topics([TopicSpec(name, partitions, 1, dict(config or {}))])
        return name

    async def produce(self, records: Sequence[OutgoingRecord]) -> None:
        producer = self.transport.producer()
        await producer.start()
        try:
            await producer.send_many(records)
        finally:
            await producer.stop()


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    transport = InMemoryTransport()
    admin = transport.admin()
    await admin.start()
    yield Cluster(transport, admin)
    await admin.stop()
