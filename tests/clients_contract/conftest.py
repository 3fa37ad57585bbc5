"""One ``env`` per transport kind: every test here runs in memory and on real Kafka.

The in-memory transport and :class:`KafkaTransport` must give the typed clients the same
observable behaviour (handlers, retries, DLQ, commits), so the same tests run on both.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from streaming.consumer import EventConsumer
from streaming.producer import EventProducer
from streaming.retry import RetryPolicy
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.transport.base import Record, TopicPartition, TopicSpec, TransportFactory
from streaming.transport.memory import InMemoryTransport
from tests.integration.waiting import until


class ClientEnv:
    """Transport, registry, tracer and per-test topics (deleted afterwards)."""

    def __init__(self, kind: str, transport: TransportFactory) -> None:
        self.kind = kind
        self.transport = transport
        self.registry = InMemorySchemaRegistryClient()
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = provider.get_tracer("contract")
        self.admin = transport.admin()
        self._prefixes: list[str] = []

    async def topic(self, partitions: int = 1) -> str:
        name = f"cc-{uuid.uuid4().hex[:10]}"
        await self.admin.create_topics([TopicSpec(name, partitions, 1)])
        self._prefixes.append(name)
        return name

    def group(self) -> str:
        return f"g{uuid.uuid4().hex[:6]}"

    def producer(self, **options: Any) -> EventProducer:
        return EventProducer(self.transport, self.registry, tracer=self.tracer, **options)

    def consumer(self, topic: str, group: str, **options: Any) -> EventConsumer:
        options.setdefault("retry_policy", RetryPolicy(attempts=3, delays_s=(0.3, 0.3), jitter=0))
        options.setdefault("poll_timeout_ms", 200)
        options.setdefault("session_timeout_ms", 6_000)
        return EventConsumer(
            self.transport,
            self.registry,
            topics=[topic],
            group_id=group,
            tracer=self.tracer,
            **options,
        )

    @asynccontextmanager
    async def running(self, consumer: EventConsumer) -> AsyncIterator[EventConsumer]:
        task = asyncio.create_task(consumer.run())
        try:
            yield consumer
        finally:
            consumer.request_stop()
            await asyncio.wait_for(task, 30)

    @staticmethod
    async def wait_for(
        check: Callable[[], bool | Awaitable[bool]], timeout_s: float = 30.0, what: str = ""
    ) -> None:
        await until(check, timeout_s, what or str(check))

    async def read_all(self, topic: str) -> list[Record]:
        """Every record currently in ``topic`` (reads from the start to the end offsets)."""
        consumer = self.transport.consumer(group_id=None)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in sorted(await consumer.partitions_for(topic))]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            got: list[Record] = []

            async def done() -> bool:
                for records in (await consumer.poll(timeout_ms=200)).values():
                    got.extend(records)
                return all([await consumer.position(tp) >= ends[tp] for tp in tps])

            await self.wait_for(done, 30, f"end of {topic}")
            return got
        finally:
            await consumer.stop()

    async def close(self) -> None:
        if self._prefixes:
            present = await self.admin.list_topics()
            doomed = [t for t in present if any(t.startswith(p) for p in self._prefixes)]
            await self.admin.delete_topics(doomed)
        await self.admin.stop()


@pytest.fixture(
    params=[pytest.param("memory"), pytest.param("kafka", marks=pytest.mark.integration)]
)
async def env(request: pytest.FixtureRequest) -> AsyncIterator[ClientEnv]:
    transport: TransportFactory
    if request.param == "memory":
        transport = InMemoryTransport()
    else:
        transport = request.getfixturevalue("kafka_transport")
    e = ClientEnv(request.param, transport)
    await e.admin.start()
    try:
        yield e
    finally:
        await e.close()
