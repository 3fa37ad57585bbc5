"""AvroSerializer/AvroDeserializer behaviour against the in-memory registry."""

import io
import json
import struct
import uuid
from typing import Any

import fastavro
import pytest

from streaming.serde.avro import (
    AvroDeserializer,
    AvroSerializer,
    reading_form,
    without_uuid_types,
)
from streaming.serde.catalog import LocalSchema, SchemaCatalog
from streaming.serde.context import MessageField, SerializationContext
from streaming.serde.errors import (
    BadMagicByteError,
    CorruptRecordError,
    DeserializationError,
    RegistryUnavailableError,
    SchemaLookupError,
    SchemaMismatchError,
    SerializeError,
    TruncatedRecordError,
    UnknownSchemaIdError,
)
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.serde.schema import Schema
from streaming.serde.strategies import record_name_strategy, topic_record_name_strategy
from streaming.serde.wire import frame, unframe

V1 = LocalSchema.from_json(
    {
        "type": "record",
        "name": "Trade",
        "namespace": "t",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "qty", "type": "long"},
            {"name": "side", "type": {"type": "enum", "name": "Side", "symbols": ["B", "S"]}},
            {"name": "note", "type": ["null", "string"], "default": None},
        ],
    }
)
V2 = LocalSchema.from_json(
    {
        "type": "record",
        "name": "Trade",
        "namespace": "t",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "qty", "type": "double"},
            {"name": "side", "type": {"type": "enum", "name": "Side", "symbols": ["B", "S"]}},
            {"name": "note", "type": ["null", "string"], "default": None},
            {"name": "venue", "type": "string", "default": "XNAS"},
        ],
    }
)
INCOMPATIBLE = LocalSchema.from_json(
    {"type": "record", "name": "Trade", "namespace": "t", "fields": [{"name": "id", "type": "int"}]}
)
TRADE = {"id": "t-1", "qty": 5, "side": "B", "note": None}
CTX = SerializationContext("trades", headers=(("h", b"1"),), partition=1, offset=99)
EMPTY = SchemaCatalog([])


def serializer(registry: InMemorySchemaRegistryClient, **kw: Any) -> AvroSerializer:
    return AvroSerializer(registry, schema=kw.pop("schema", V1), catalog=EMPTY, **kw)


def deserializer(registry: InMemorySchemaRegistryClient, **kw: Any) -> AvroDeserializer:
    return AvroDeserializer(registry, catalog=EMPTY, **kw)


async def test_dict_round_trip_and_header_names_the_registered_id() -> None:
    registry = InMemorySchemaRegistryClient()
    data = await serializer(registry).serialize(TRADE, CTX)
    schema_id, _ = unframe(data)
    assert (await registry.lookup_schema("trades-value", V1.to_schema())).schema_id == schema_id
    decoded = await deserializer(registry).deserialize(data, CTX)
    assert decoded.value == TRADE
    assert decoded.schema_id == schema_id
    assert decoded.record_name == "t.Trade"
    assert decoded.writer_schema.schema_str == V1.schema_str


async def test_body_is_exactly_fastavro_schemaless() -> None:
    registry = InMemorySchemaRegistryClient()
    data = await serializer(registry).serialize(TRADE, CTX)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(V1.definition()), TRADE)
    assert data[5:] == out.getvalue()


async def test_registry_is_asked_once_per_subject_and_once_per_id() -> None:
    registry = InMemorySchemaRegistryClient()
    ser, de = serializer(registry), deserializer(registry)
    for _ in range(5):
        await de.deserialize(await ser.serialize(TRADE, CTX), CTX)
    assert registry.calls["register_schema"] == 1
    assert registry.calls["get_schema"] == 1


async def test_none_is_a_tombstone_both_ways() -> None:
    registry = InMemorySchemaRegistryClient()
    assert await serializer(registry).serialize(None, CTX) is None
    assert await deserializer(registry).deserialize(None, CTX) is None


async def test_subject_strategies_choose_the_subject() -> None:
    registry = InMemorySchemaRegistryClient()
    key_ctx = SerializationContext("trades", MessageField.KEY)
    await serializer(registry).serialize(TRADE, key_ctx)
    await serializer(registry, subject_name_strategy=record_name_strategy).serialize(TRADE, CTX)
    await serializer(registry, subject_name_strategy=topic_record_name_strategy).serialize(
        TRADE, CTX
    )
    assert await registry.get_subjects() == ["t.Trade", "trades-key", "trades-t.Trade"]


async def test_without_auto_register_an_unregistered_schema_is_a_clear_error() -> None:
    registry = InMemorySchemaRegistryClient()
    with pytest.raises(SerializeError, match="auto_register is off"):
        await serializer(registry, auto_register=False).serialize(TRADE, CTX)
    await registry.register_schema("trades-value", V1.to_schema())
    data = await serializer(registry, auto_register=False).serialize(TRADE, CTX)
    assert (await deserializer(registry).deserialize(data, CTX)).value == TRADE


async def test_a_value_that_does_not_fit_raises_serialize_error() -> None:
    registry = InMemorySchemaRegistryClient()
    with pytest.raises(SerializeError, match=r"does not fit schema t\.Trade") as caught:
        await serializer(registry).serialize({**TRADE, "qty": "many"}, CTX)
    assert caught.value.subject == "trades-value"
    assert caught.value.__cause__ is not None


async def test_a_dict_without_a_schema_is_refused() -> None:
    registry = InMemorySchemaRegistryClient()
    with pytest.raises(SerializeError, match="needs AvroSerializer"):
        await AvroSerializer(registry, catalog=EMPTY).serialize(TRADE, CTX)


async def test_a_v2_reader_reads_v1_records_with_defaults_and_promotion() -> None:
    registry = InMemorySchemaRegistryClient()
    data = await serializer(registry).serialize(TRADE, CTX)
    decoded = await deserializer(registry, reader_schema=V2).deserialize(data, CTX)
    assert decoded.value == {**TRADE, "qty": 5.0, "venue": "XNAS"}
    assert isinstance(decoded.value["qty"], float)


async def test_use_local_schemas_picks_the_reader_by_writer_name() -> None:
    registry = InMemorySchemaRegistryClient()
    data = await serializer(registry).serialize(TRADE, CTX)
    de = AvroDeserializer(registry, use_local_schemas=True, catalog=SchemaCatalog([V2]))
    assert (await de.deserialize(data, CTX)).value["venue"] == "XNAS"


async def test_an_unresolvable_reader_schema_is_a_schema_mismatch() -> None:
    registry = InMemorySchemaRegistryClient()
    data = await serializer(registry).serialize(TRADE, CTX)
    with pytest.raises(SchemaMismatchError) as caught:
        await deserializer(registry, reader_schema=INCOMPATIBLE).deserialize(data, CTX)
    assert caught.value.data == data and caught.value.schema_id == 1


def assert_carries_context(error: DeserializationError, data: bytes) -> None:
    assert error.data == data
    assert (error.topic, error.partition, error.offset) == ("trades", 1, 99)
    assert error.headers == (("h", b"1"),)
    assert error.field is MessageField.VALUE
    assert error.retriable is False


async def test_bad_magic_byte() -> None:
    data = b"\x01" + bytes(10)
    with pytest.raises(BadMagicByteError) as caught:
        await deserializer(InMemorySchemaRegistryClient()).deserialize(data, CTX)
    assert_carries_context(caught.value, data)


async def test_unknown_schema_id() -> None:
    data = frame(4242, b"\x02")
    with pytest.raises(UnknownSchemaIdError) as caught:
        await deserializer(InMemorySchemaRegistryClient()).deserialize(data, CTX)
    assert_carries_context(caught.value, data)
    assert caught.value.schema_id == 4242


async def test_truncated_body() -> None:
    registry = InMemorySchemaRegistryClient()
    data = (await serializer(registry).serialize(TRADE, CTX))[:-2]
    with pytest.raises(TruncatedRecordError) as caught:
        await deserializer(registry).deserialize(data, CTX)
    assert_carries_context(caught.value, data)
    assert isinstance(caught.value.cause, EOFError)


async def test_trailing_bytes_are_corrupt() -> None:
    registry = InMemorySchemaRegistryClient()
    data = await serializer(registry).serialize(TRADE, CTX) + b"\x00\x00"
    with pytest.raises(CorruptRecordError, match="2 byte") as caught:
        await deserializer(registry).deserialize(data, CTX)
    assert not isinstance(caught.value, TruncatedRecordError)


@pytest.mark.parametrize(
    "body",
    [
        b"\x06abc\x02\x08\x00",  # enum index 4 of 2 symbols
        b"\x06abc\x02\x00\x10",  # union branch 8 of 2
        b"\x04\xff\xfe\x02\x00\x00",  # invalid UTF-8 string
    ],
)
async def test_garbage_bodies_are_corrupt_never_a_bare_library_error(body: bytes) -> None:
    registry = InMemorySchemaRegistryClient()
    schema_id = await registry.register_schema("trades-value", V1.to_schema())
    data = frame(schema_id, body)
    with pytest.raises(CorruptRecordError) as caught:
        await deserializer(registry).deserialize(data, CTX)
    assert_carries_context(caught.value, data)


async def test_a_registry_outage_is_retriable_not_poison() -> None:
    class Down(InMemorySchemaRegistryClient):
        async def get_schema(self, schema_id: int) -> Schema:
            raise RegistryUnavailableError("down", status=503, error_code=50003)

    data = frame(1, b"\x00")
    with pytest.raises(SchemaLookupError) as caught:
        await deserializer(Down()).deserialize(data, CTX)
    assert caught.value.retriable is True
    assert isinstance(caught.value.cause, RegistryUnavailableError)


async def test_references_are_registered_under_their_fullname_and_resolved_on_read() -> None:
    money = LocalSchema.from_json({"type": "fixed", "name": "Cents", "namespace": "m", "size": 8})
    order = LocalSchema.from_json(
        {
            "type": "record",
            "name": "O",
            "namespace": "o",
            "fields": [{"name": "p", "type": "m.Cents"}],
        }
    )
    catalog = SchemaCatalog([money, order])
    registry = InMemorySchemaRegistryClient()
    ser = AvroSerializer(registry, schema=order, catalog=catalog)
    data = await ser.serialize({"p": struct.pack(">q", 1234)}, CTX)
    assert await registry.get_subjects() == ["m.Cents", "trades-value"]
    writer = await registry.get_schema(unframe(data)[0])
    assert [(r.name, r.subject, r.version) for r in writer.references] == [
        ("m.Cents", "m.Cents", 1)
    ]
    decoded = await AvroDeserializer(registry, catalog=EMPTY).deserialize(data, CTX)
    assert decoded.value == {"p": struct.pack(">q", 1234)}
    assert json.loads(decoded.writer_schema.schema_str)["fields"][0]["type"] == "m.Cents"


V1_DOCUMENTED = LocalSchema.from_json(
    {
        "type": "record",
        "name": "Trade",
        "namespace": "t",
        "doc": "A trade.",
        "x-partition-key": "id",
        "fields": [
            {"name": "id", "type": "string", "doc": "Trade id."},
            {"name": "qty", "type": "long"},
            {
                "name": "side",
                "type": {"type": "enum", "name": "Side", "namespace": "t", "symbols": ["B", "S"]},
            },
            {"name": "note", "type": ["null", "string"], "default": None, "aliases": ["memo"]},
        ],
    }
)


def test_reading_forms_ignore_docs_namespaces_and_custom_attributes() -> None:
    documented = SchemaCatalog([V1_DOCUMENTED]).parsed("t.Trade")
    assert reading_form(documented) == reading_form(SchemaCatalog([V1]).parsed("t.Trade"))
    assert reading_form(documented) != reading_form(SchemaCatalog([V2]).parsed("t.Trade"))
    as_uuid = json.loads(V1.schema_str)
    as_uuid["fields"][0]["type"] = {"type": "string", "logicalType": "uuid"}
    uuid_catalog = SchemaCatalog([LocalSchema.from_json(as_uuid)])
    assert reading_form(uuid_catalog.parsed("t.Trade")) != reading_form(documented)


async def test_a_writer_that_differs_only_in_docs_reads_as_written() -> None:
    registry = InMemorySchemaRegistryClient()
    data = await serializer(registry).serialize(TRADE, CTX)
    de = AvroDeserializer(registry, use_local_schemas=True, catalog=SchemaCatalog([V1_DOCUMENTED]))
    assert (await de.deserialize(data, CTX)).value == TRADE
    with pytest.raises(CorruptRecordError, match="left over"):
        await de.deserialize(data + b"\x00", CTX)


WITH_UUID = LocalSchema.from_json(
    {
        "type": "record",
        "name": "Ref",
        "namespace": "t",
        "fields": [{"name": "id", "type": {"type": "string", "logicalType": "uuid"}}],
    }
)


async def test_uuid_as_text_leaves_uuid_values_as_their_text() -> None:
    registry = InMemorySchemaRegistryClient()
    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    data = await serializer(registry, schema=WITH_UUID).serialize({"id": value}, CTX)
    as_read = deserializer(registry, reader_schema=WITH_UUID)
    as_text = deserializer(registry, reader_schema=WITH_UUID, uuid_as_text=True)
    assert (await as_read.deserialize(data, CTX)).value == {"id": value}
    assert (await as_text.deserialize(data, CTX)).value == {"id": str(value)}


async def test_an_event_with_malformed_uuid_text_is_a_typed_mismatch() -> None:
    from streaming.events import EventDeserializer, OrderPlaced
    from streaming.events.fake import fake_events

    registry = InMemorySchemaRegistryClient()
    event = next(iter(fake_events(OrderPlaced, 1)))
    raw = event.to_avro_dict()
    raw["order_id"] = "not-a-uuid"
    schema = LocalSchema.from_json(
        without_uuid_types(json.loads(OrderPlaced.avro_schema().schema_str))
    )
    plain = AvroSerializer(registry, schema=schema)  # a writer that never checked the text
    data = await plain.serialize(raw, CTX)
    events = EventDeserializer(registry)
    good = await AvroSerializer(registry).serialize(event, CTX)
    assert await events.deserialize(good, CTX) == event
    with pytest.raises(SchemaMismatchError, match="order_id") as caught:
        await events.deserialize(data, CTX)
    assert caught.value.data == data and caught.value.retriable is False
