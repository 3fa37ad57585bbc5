"""Our serde against our registry service and a real broker, interoperating with
confluent-kafka's own serializer and deserializer (run in a thread: they block)."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient as ConfluentClient
from confluent_kafka.schema_registry.avro import AvroDeserializer as ConfluentDeserializer
from confluent_kafka.schema_registry.avro import AvroSerializer as ConfluentSerializer
from confluent_kafka.serialization import MessageField as ConfluentField
from confluent_kafka.serialization import SerializationContext as ConfluentContext

from streaming.events import (
    EventDeserializer,
    EventMetadata,
    Money,
    OrderPlaced,
    OrderSide,
    OrderType,
)
from streaming.serde import (
    AvroDeserializer,
    AvroSerializer,
    BadMagicByteError,
    IncompatibleSchemaError,
    LocalSchema,
    SchemaCatalog,
    SchemaRegistryClient,
    SerializationContext,
    SubjectNotFoundError,
    UnknownSchemaIdError,
    unframe,
)
from streaming.testing import eventually
from streaming.testing.plugin import TopicFactory
from streaming.transport.base import OutgoingRecord, Record, TopicPartition
from streaming.transport.kafka import KafkaTransport

TRADE_V1: dict[str, Any] = {
    "type": "record",
    "name": "Trade",
    "namespace": "com.example",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "qty", "type": "long"},
    ],
}
TRADE_V2: dict[str, Any] = {
    **TRADE_V1,
    "fields": [*TRADE_V1["fields"], {"name": "venue", "type": "string", "default": "XNAS"}],
}
NO_CATALOG = SchemaCatalog([])


async def through_kafka(kafka_transport: KafkaTransport, topic: str, value: bytes) -> Record:
    """Produce one record and consume it back from the broker."""
    producer = kafka_transport.producer()
    await producer.start()
    try:
        await producer.send(OutgoingRecord(topic, value, headers=(("event-type", b"x"),)))
    finally:
        await producer.stop()
    consumer = kafka_transport.consumer()
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)

        async def first() -> Record | None:
            for records in (await consumer.poll(timeout_ms=500)).values():
                return records[0]
            return None

        return await eventually(first, timeout_s=30, what=f"a record from {topic}")
    finally:
        await consumer.stop()


def order() -> OrderPlaced:
    return OrderPlaced(
        metadata=EventMetadata(correlation_id="req-7"),
        order_id=uuid.uuid4(),
        account_id="acc-1",
        symbol="AAPL",
        side=OrderSide.SELL,
        order_type=OrderType.LIMIT,
        quantity=Decimal("12.5"),
        limit_price=Money(amount=Decimal("187.25"), currency="USD"),
    )


async def test_confluent_reads_our_event_bytes_with_schema_references(
    schema_registry: SchemaRegistryClient,
    registry_url: str,
    kafka_transport: KafkaTransport,
    topic_factory: TopicFactory,
) -> None:
    topic = await topic_factory(prefix="serde")
    event = order()
    data = await AvroSerializer(schema_registry).serialize(event, SerializationContext(topic))
    record = await through_kafka(kafka_transport, topic, data)
    assert record.value == data

    def confluent_read() -> Any:
        client = ConfluentClient({"url": registry_url})
        return ConfluentDeserializer(client)(
            record.value, ConfluentContext(topic, ConfluentField.VALUE)
        )

    value = await asyncio.to_thread(confluent_read)
    assert value == event.to_avro_dict()
    assert "com.tradesense.common.Money" in await schema_registry.get_subjects()


async def test_we_read_confluent_bytes_as_dicts_and_as_a_newer_reader(
    schema_registry: SchemaRegistryClient,
    registry_url: str,
    kafka_transport: KafkaTransport,
    topic_factory: TopicFactory,
) -> None:
    topic = await topic_factory(prefix="serde")

    def confluent_write() -> bytes:
        client = ConfluentClient({"url": registry_url})
        serializer = ConfluentSerializer(client, json.dumps(TRADE_V1))
        out = serializer({"id": "t-1", "qty": 5}, ConfluentContext(topic, ConfluentField.VALUE))
        assert out is not None
        return out

    data = await asyncio.to_thread(confluent_write)
    record = await through_kafka(kafka_transport, topic, data)
    ctx = SerializationContext.for_record(record)
    plain = await AvroDeserializer(schema_registry, catalog=NO_CATALOG).deserialize(
        record.value or b"", ctx
    )
    assert plain.value == {"id": "t-1", "qty": 5}
    assert plain.record_name == "com.example.Trade"
    v2 = LocalSchema.from_json(TRADE_V2)
    newer = AvroDeserializer(schema_registry, reader_schema=v2, catalog=NO_CATALOG)
    assert (await newer.deserialize(record.value or b"", ctx)).value == {
        "id": "t-1",
        "qty": 5,
        "venue": "XNAS",
    }


async def test_confluent_writes_our_registered_event_and_we_read_it_typed(
    schema_registry: SchemaRegistryClient, registry_url: str, topic_factory: TopicFactory
) -> None:
    topic = await topic_factory(prefix="serde")
    event = order()
    ours = await AvroSerializer(schema_registry).serialize(event, SerializationContext(topic))

    def confluent_write() -> bytes:
        client = ConfluentClient({"url": registry_url})
        serializer = ConfluentSerializer(
            client,
            conf={"auto.register.schemas": False, "use.latest.version": True},
        )
        out = serializer(event.to_avro_dict(), ConfluentContext(topic, ConfluentField.VALUE))
        assert out is not None
        return out

    theirs = await asyncio.to_thread(confluent_write)
    assert unframe(theirs)[0] == unframe(ours)[0]
    assert bytes(unframe(theirs)[1]) == bytes(unframe(ours)[1])
    decoded = await EventDeserializer(schema_registry).deserialize(
        theirs, SerializationContext(topic)
    )
    assert decoded == event


async def test_client_talks_confluent_to_the_real_registry(
    schema_registry: SchemaRegistryClient,
) -> None:
    subject = f"client-{uuid.uuid4().hex[:8]}-value"
    v1 = LocalSchema.from_json(TRADE_V1).to_schema()
    v2 = LocalSchema.from_json(TRADE_V2).to_schema()
    first = await schema_registry.register_schema(subject, v1)
    assert await schema_registry.register_schema(subject, v1) == first
    second = await schema_registry.register_schema(subject, v2)
    assert await schema_registry.get_versions(subject) == [1, 2]
    assert (await schema_registry.get_latest_version(subject)).schema_id == second
    assert (await schema_registry.lookup_schema(subject, v1)).version == 1
    assert (await schema_registry.get_version(subject, 1)).schema_id == first
    assert json.loads((await schema_registry.get_schema(second)).schema_str) == TRADE_V2
    breaking = LocalSchema.from_json({**TRADE_V1, "fields": [{"name": "id", "type": "int"}]})
    result = await schema_registry.test_compatibility(subject, breaking.to_schema())
    assert result.is_compatible is False
    with pytest.raises(IncompatibleSchemaError) as caught:
        await schema_registry.register_schema(subject, breaking.to_schema())
    assert caught.value.error_code == 409
    with pytest.raises(SubjectNotFoundError) as missing:
        await schema_registry.get_versions(f"missing-{uuid.uuid4().hex}")
    assert missing.value.error_code == 40401
    assert await schema_registry.delete_subject(subject, permanent=True) == [1, 2]


async def test_undecodable_records_from_kafka_carry_their_coordinates(
    schema_registry: SchemaRegistryClient,
    kafka_transport: KafkaTransport,
    topic_factory: TopicFactory,
) -> None:
    topic = await topic_factory(prefix="serde")
    record = await through_kafka(kafka_transport, topic, b'{"not": "avro"}')
    ctx = SerializationContext.for_record(record)
    with pytest.raises(BadMagicByteError) as caught:
        await AvroDeserializer(schema_registry, catalog=NO_CATALOG).deserialize(
            record.value or b"", ctx
        )
    error = caught.value
    assert (error.topic, error.partition, error.offset) == (topic, 0, record.offset)
    assert error.data == b'{"not": "avro"}'
    assert error.headers == (("event-type", b"x"),)
    with pytest.raises(UnknownSchemaIdError):
        await AvroDeserializer(schema_registry, catalog=NO_CATALOG).deserialize(
            b"\x00\x7f\xff\xff\xf0\x00", ctx
        )
