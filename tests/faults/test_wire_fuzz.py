"""Bad input on the wire: mutated Confluent wire-format records (magic byte, schema id,
Avro body) through the deserializer and through a running consumer.

Every input is either decoded or refused with a typed ``DeserializationError`` that keeps
the raw bytes; a consumer dead-letters what it cannot decode (raw bytes kept) and never
crashes or stalls. Records are produced with an independent confluent-kafka producer and
the DLQ is read back with an independent consumer.
"""

from __future__ import annotations

import asyncio
import random
import struct
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TypeVar

import pytest_asyncio
from confluent_kafka import Consumer, Producer, TopicPartition
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from streaming.clients.consumer import CallNext, EventConsumer, Message
from streaming.clients.retry import (
    H_EXCEPTION_TYPE,
    H_ORIGINAL_OFFSET,
    H_ORIGINAL_PARTITION,
    dlq_topic,
)
from streaming.config import KafkaSettings, RegistrySettings
from streaming.events import EventDeserializer
from streaming.events.fake import FAKERS, fake_events
from streaming.serde.avro import AvroSerializer
from streaming.serde.client import SchemaRegistryClient
from streaming.serde.context import SerializationContext
from streaming.serde.errors import DeserializationError
from streaming.transport import TopicSpec
from streaming.transport.kafka import KafkaTransport
from tests.faults.cluster import Cluster
from tests.faults.conftest import SIZES
from tests.faults.report import record_bad_input


def draw(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """``count`` examples from ``strategy``, generated up front: hypothesis cannot drive
    an async body inside a running event loop, so the async checks loop over these."""
    out: list[T] = []

    @settings(
        max_examples=count,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        phases=[Phase.generate],
    )
    @given(strategy)
    def collect(value: T) -> None:
        out.append(value)

    collect()
    return out


def _names(cls: type[BaseException]) -> set[str]:
    return {cls.__name__}.union(*(_names(sub) for sub in cls.__subclasses__()))


DECODE_ERRORS = _names(DeserializationError)
T = TypeVar("T")


@dataclass
class Wire:
    """A registry client, valid framed records of every fake event type, and a topic."""

    registry: SchemaRegistryClient
    topic: str
    valid: list[bytes]
    outcomes: dict[str, int] = field(default_factory=dict)


@pytest_asyncio.fixture(loop_scope="session")
async def wire(cluster: Cluster) -> AsyncIterator[Wire]:
    topic = f"fuzz-{uuid.uuid4().hex[:8]}"
    async with SchemaRegistryClient(RegistrySettings(url=cluster.registry_url)) as registry:
        serializer = AvroSerializer(registry)
        rng = random.Random(12)
        valid = [
            # one subject per type (topic name strategy): a subject holds one record type
            await serializer.serialize(event, SerializationContext(f"{topic}-{kind.__name__}"))
            for kind in FAKERS
            for event in fake_events(kind, 2, rng=rng)
        ]
        yield Wire(registry, topic, valid)


@st.composite
def mutated(draw: st.DrawFn, valid: list[bytes]) -> bytes:
    """A valid record bent one or more ways, or plain noise."""
    data = bytearray(draw(st.sampled_from(valid)))
    for _ in range(draw(st.integers(1, 3))):
        how = draw(
            st.sampled_from(["flip", "truncate", "append", "schema-id", "magic", "noise", "splice"])
        )
        if how == "flip" and data:
            at = draw(st.integers(0, len(data) - 1))
            data[at] ^= draw(st.integers(1, 255))
        elif how == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif how == "append":
            data += draw(st.binary(min_size=1, max_size=32))
        elif how == "schema-id" and len(data) >= 5:
            data[1:5] = struct.pack(">i", draw(st.integers(-(2**31), 2**31 - 1)))
        elif how == "magic" and data:
            data[0] = draw(st.integers(1, 255))
        elif how == "noise":
            data = bytearray(draw(st.binary(max_size=64)))
        elif how == "splice" and len(data) > 5:
            other = draw(st.sampled_from(valid))
            data[5:] = other[5:]  # a body under another schema's id
    return bytes(data)


async def test_deserializer_decodes_or_refuses_every_mutated_record(wire: Wire) -> None:
    deserializer = EventDeserializer(wire.registry)
    seen = {"decoded": 0, "refused": 0}

    try:
        for data in draw(mutated(wire.valid), SIZES.fuzz_examples):
            try:
                await asyncio.wait_for(
                    deserializer.deserialize(data, SerializationContext(wire.topic)), 10
                )
            except DeserializationError as exc:
                assert exc.data == data, "the error must carry the raw bytes"  # noqa: PT017
                seen["refused"] += 1
            else:
                seen["decoded"] += 1
    finally:
        total = seen["decoded"] + seen["refused"]
        record_bad_input(
            "mutated wire-format records into the deserializer",
            total,
            total,
            f"{seen['decoded']} decoded, {seen['refused']} typed errors with raw bytes",
        )


async def test_consumer_decodes_or_dead_letters_every_mutated_record(
    wire: Wire, cluster: Cluster
) -> None:
    topic = f"fuzz-consumer-{uuid.uuid4().hex[:8]}"
    group = f"fuzz-{uuid.uuid4().hex[:6]}"
    admin = cluster.transport().admin()
    await admin.start()
    try:
        await admin.create_topics([TopicSpec(topic, 3, 3, {"min.insync.replicas": "2"})])
    finally:
        await admin.stop()
    transport = KafkaTransport(KafkaSettings(bootstrap_servers=cluster.bootstrap))
    consumer = EventConsumer(
        transport, wire.registry, topics=[topic], group_id=group, poll_timeout_ms=100
    )
    decoded: set[tuple[int, int]] = set()

    async def note_decoded(message: Message, call_next: CallNext) -> None:
        await call_next(message)
        decoded.add((message.record.partition, message.record.offset))

    consumer.use(note_decoded)
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "enable.idempotence": True})
    dlq = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": f"{group}-reader",
            "enable.auto.commit": False,
        }
    )
    dead: dict[tuple[int, int], tuple[bytes | None, str]] = {}
    counts = {"records": 0, "decoded": 0, "dead": 0, "stalls": 0}
    running = asyncio.create_task(consumer.run())
    try:
        await _until(lambda: consumer.running, 60, "the consumer to start", running)
        dlq_name = dlq_topic(topic, group)
        dlq.assign([TopicPartition(dlq_name, p, 0) for p in range(6)])

        def drain_dlq() -> None:
            while (msg := dlq.poll(0)) is not None:
                if msg.error() is None:
                    headers = {k: v for k, v in msg.headers() or []}
                    where = (
                        int(headers[H_ORIGINAL_PARTITION]),
                        int(headers[H_ORIGINAL_OFFSET]),
                    )
                    dead[where] = (msg.value(), headers[H_EXCEPTION_TYPE].decode())

        async def check(batch: list[bytes]) -> None:
            sent: dict[tuple[int, int], bytes] = {}

            def delivered(err: object, msg: object) -> None:
                assert err is None, err
                sent[(msg.partition(), msg.offset())] = msg.value()  # type: ignore[attr-defined]

            for data in batch:
                producer.produce(topic, value=data, on_delivery=delivered)
            producer.flush(30)
            assert len(sent) == len(batch)

            def accounted() -> bool:
                drain_dlq()
                return all(at in decoded or at in dead for at in sent)

            await _until(accounted, 30, "every record decoded or dead-lettered", running)
            for at, data in sent.items():
                if at in dead:
                    raw, kind = dead[at]
                    assert raw == data, f"DLQ record {at} lost its raw bytes"
                    assert kind.rsplit(".", 1)[-1] in DECODE_ERRORS, (
                        f"{at} dead-lettered for {kind}"
                    )
                    counts["dead"] += 1
                else:
                    counts["decoded"] += 1
            counts["records"] += len(sent)

        batches = st.lists(mutated(wire.valid), min_size=1, max_size=25)
        for batch in draw(batches, SIZES.consumer_fuzz_examples):
            await check(batch)

    finally:
        consumer.request_stop()
        await asyncio.wait_for(running, 60)
        dlq.close()
        record_bad_input(
            "mutated wire-format records through a consumer",
            counts["records"],
            counts["decoded"] + counts["dead"],
            f"{counts['decoded']} decoded, {counts['dead']} dead-lettered with raw bytes",
        )


async def _until(check: object, timeout_s: float, what: str, task: asyncio.Task[None]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():  # type: ignore[operator]
        if task.done():
            task.result()
            raise AssertionError("the consumer stopped on its own")
        assert loop.time() < deadline, f"timed out after {timeout_s}s waiting for {what}"
        await asyncio.sleep(0.05)  # poll
