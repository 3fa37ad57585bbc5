"""Unmodified confluent-kafka clients against our registry."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.integration.registry.conftest import ServerFactory

ORDER_V1 = {
    "type": "record",
    "name": "OrderPlaced",
    "namespace": "com.tradesense",
    "fields": [
        {"name": "order_id", "type": "string"},
        {"name": "quantity", "type": "long"},
    ],
}
ORDER_V2 = {
    **ORDER_V1,
    "fields": [*ORDER_V1["fields"], {"name": "venue", "type": "string", "default": "XNAS"}],
}


def _roundtrip(url: str) -> dict[str, Any]:
    client = SchemaRegistryClient({"url": url})
    ctx = SerializationContext("orders", MessageField.VALUE)
    v1 = AvroSerializer(client, json.dumps(ORDER_V1))
    v2 = AvroSerializer(client, json.dumps(ORDER_V2))
    old_bytes = v1({"order_id": "o-1", "quantity": 5}, ctx)
    new_bytes = v2({"order_id": "o-2", "quantity": 7, "venue": "XLON"}, ctx)
    reader = AvroDeserializer(client)
    pinned = AvroDeserializer(client, json.dumps(ORDER_V2))
    registered = client.get_latest_version("orders-value")
    lookup = client.lookup_schema("orders-value", Schema(json.dumps(ORDER_V1), "AVRO"))
    incompatible = {**ORDER_V2, "fields": [{"name": "order_id", "type": "int"}]}
    compatible = client.test_compatibility("orders-value", Schema(json.dumps(incompatible), "AVRO"))
    client.set_compatibility("orders-value", "FULL")
    return {
        "old_bytes": old_bytes,
        "new_bytes": new_bytes,
        "old": reader(old_bytes, ctx),
        "new": reader(new_bytes, ctx),
        "old_as_v2": pinned(old_bytes, ctx),
        "versions": client.get_versions("orders-value"),
        "latest_version": registered.version,
        "lookup_version": lookup.version,
        "compatible": compatible,
        "subjects": client.get_subjects(),
        "level": client.get_compatibility("orders-value"),
    }


async def test_confluent_serializer_and_deserializer_work_against_our_registry(
    start_registry: ServerFactory,
) -> None:
    server = await start_registry()
    out = await asyncio.to_thread(_roundtrip, server.url)
    assert out["old_bytes"][0] == 0 and int.from_bytes(out["old_bytes"][1:5], "big") == 1
    assert int.from_bytes(out["new_bytes"][1:5], "big") == 2
    assert out["old"] == {"order_id": "o-1", "quantity": 5}
    assert out["new"] == {"order_id": "o-2", "quantity": 7, "venue": "XLON"}
    assert out["old_as_v2"] == {"order_id": "o-1", "quantity": 5, "venue": "XNAS"}
    assert out["versions"] == [1, 2]
    assert out["latest_version"] == 2 and out["lookup_version"] == 1
    assert out["compatible"] is False
    assert out["subjects"] == ["orders-value"]
    assert out["level"] == "FULL"
