"""Fixtures for the transport behavioural suite: one ``harness`` per transport kind.

Every test in ``tests/transport`` runs twice, once against :class:`InMemoryTransport` and
once against a real Kafka broker (``KAFKA_BOOTSTRAP_SERVERS``) through
:class:`KafkaTransport`; both must behave the same.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from streaming.testing import eventually
from streaming.transport.base import (
    AdminTransport,
    ConsumerTransport,
    ProducerTransport,
    Record,
    TopicPartition,
    TopicSpec,
    TransportFactory,
)
from streaming.transport.kafka import KafkaTransport
from streaming.transport.memory import InMemoryTransport


class Harness:
    """Starts clients and unique topics for one test and cleans them all up afterwards."""

    def __init__(self, kind: str, factory: TransportFactory) -> None:
        self.kind = kind
        self.factory = factory
        self.admin: AdminTransport = factory.admin()
        self._clients: list[ProducerTransport | ConsumerTransport] = []
        self._topics: list[str] = []

    async def new_topic(self, partitions: int = 1, config: Mapping[str, str] | None = None) -> str:
        name = f"contract-{uuid.uuid4().hex[:12]}"
        await self.admin.create_topics([TopicSpec(name, partitions, 1, dict(config or {}))])
        self._topics.append(name)
        return name

    async def producer(self, **options: Any) -> ProducerTransport:
        client = self.factory.producer(**options)
        await client.start()
        self._clients.append(client)
        return client

    async def consumer(self, *, start: bool = True, **options: Any) -> ConsumerTransport:
        client = self.factory.consumer(**options)
        if start:
            await client.start()
        self._clients.append(client)
        return client

    @staticmethod
    def tps(topic: str, partitions: int) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in range(partitions)]

    async def drain(
        self, consumer: ConsumerTransport, count: int, timeout_s: float = 30.0
    ) -> list[Record]:
        """Poll until ``count`` records arrived (and fail if more than ``count`` came)."""
        got: list[Record] = []

        async def enough() -> bool:
            batch = await consumer.poll(timeout_ms=500)
            for records in batch.values():
                got.extend(records)
            return len(got) >= count

        await eventually(enough, timeout_s=timeout_s, what=f"{count} records")
        assert len(got) == count, f"expected {count} records, got {len(got)}"
        return got

    async def close(self) -> None:
        for client in reversed(self._clients):
            await client.stop()
        if self._topics:
            await self.admin.delete_topics(self._topics)
        await self.admin.stop()


@pytest.fixture(
    params=[pytest.param("memory"), pytest.param("kafka", marks=pytest.mark.integration)]
)
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    factory: TransportFactory
    if request.param == "memory":
        factory = InMemoryTransport()
    else:
        factory = KafkaTransport(request.getfixturevalue("kafka_settings"))
    h = Harness(request.param, factory)
    await h.admin.start()
    try:
        yield h
    finally:
        await h.close()
