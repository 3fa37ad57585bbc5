"""InMemorySchemaRegistryClient: the registry semantics unit tests rely on."""

import json

import pytest

from streaming.registry.avro_schema import parse_schema
from streaming.registry.model import CompatibilityLevel
from streaming.serde.compatibility import PriorSchema, check
from streaming.serde.errors import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    InvalidVersionError,
    SchemaNotFoundError,
    SubjectNotFoundError,
    VersionNotFoundError,
)
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.serde.schema import Schema, SchemaReference


def record(*fields: dict[str, object], name: str = "R") -> Schema:
    return Schema(json.dumps({"type": "record", "name": name, "fields": list(fields)}))


A = {"name": "a", "type": "string"}
B_DEFAULT = {"name": "b", "type": "int", "default": 0}
B_REQUIRED = {"name": "b", "type": "int"}


async def test_same_schema_keeps_id_and_version_and_other_subjects_reuse_the_id() -> None:
    registry = InMemorySchemaRegistryClient()
    first = await registry.register_schema("s1", record(A))
    assert await registry.register_schema("s1", record(A)) == first
    assert await registry.get_versions("s1") == [1]
    assert await registry.register_schema("s2", record(A)) == first
    assert (await registry.lookup_schema("s2", record(A))).version == 1


async def test_backward_rejects_a_new_field_without_default() -> None:
    registry = InMemorySchemaRegistryClient()
    await registry.register_schema("s", record(A))
    with pytest.raises(IncompatibleSchemaError) as caught:
        await registry.register_schema("s", record(A, B_REQUIRED))
    assert caught.value.error_code == 409
    second = await registry.register_schema("s", record(A, B_DEFAULT))
    assert (await registry.get_latest_version("s")).schema_id == second


async def test_forward_rejects_removing_a_field_without_default() -> None:
    registry = InMemorySchemaRegistryClient(compatibility="FORWARD")
    await registry.register_schema("s", record(A, B_REQUIRED))
    result = await registry.test_compatibility("s", record(A))
    assert result.is_compatible is False and result.messages
    await registry.set_compatibility("NONE", "s")
    assert (await registry.test_compatibility("s", record(A))).is_compatible


async def test_transitive_levels_check_every_live_version() -> None:
    registry = InMemorySchemaRegistryClient(compatibility="NONE")
    await registry.register_schema("s", record(A, B_REQUIRED))
    await registry.register_schema("s", record(A))
    candidate = record(A, {"name": "b", "type": "string", "default": ""})
    await registry.set_compatibility("BACKWARD", "s")
    assert (await registry.test_compatibility("s", candidate)).is_compatible
    await registry.set_compatibility("BACKWARD_TRANSITIVE", "s")
    assert not (await registry.test_compatibility("s", candidate)).is_compatible


async def test_lookups_of_unknown_things_raise_confluent_codes() -> None:
    registry = InMemorySchemaRegistryClient()
    with pytest.raises(SubjectNotFoundError):
        await registry.get_latest_version("nope")
    await registry.register_schema("s", record(A))
    with pytest.raises(VersionNotFoundError):
        await registry.get_version("s", 9)
    with pytest.raises(InvalidVersionError):
        await registry.get_version("s", 0)
    with pytest.raises(SchemaNotFoundError) as caught:
        await registry.get_schema(999)
    assert caught.value.error_code == 40403
    with pytest.raises(SchemaNotFoundError):
        await registry.lookup_schema("s", record(B_REQUIRED))


async def test_invalid_avro_is_rejected() -> None:
    registry = InMemorySchemaRegistryClient()
    with pytest.raises(InvalidSchemaError) as caught:
        await registry.register_schema(
            "s", Schema('{"type":"record","name":"R","fields":[{"name":"x","type":"nope"}]}')
        )
    assert caught.value.error_code == 42201


async def test_references_resolve_through_their_subject() -> None:
    registry = InMemorySchemaRegistryClient()
    await registry.register_schema(
        "x.M", Schema('{"type":"fixed","name":"M","namespace":"x","size":2}')
    )
    using = Schema(
        '{"type":"record","name":"U","fields":[{"name":"m","type":"x.M"}]}',
        references=(SchemaReference("x.M", "x.M", 1),),
    )
    assert await registry.register_schema("u", using) == 2
    dangling = Schema(using.schema_str, references=(SchemaReference("x.M", "x.M", 5),))
    with pytest.raises(InvalidSchemaError, match="not found"):
        await registry.register_schema("v", dangling)


async def test_soft_then_permanent_delete_hides_the_subject() -> None:
    registry = InMemorySchemaRegistryClient()
    schema_id = await registry.register_schema("s", record(A))
    assert await registry.delete_subject("s") == [1]
    assert await registry.get_subjects() == []
    assert await registry.get_schema(schema_id) == record(A)
    await registry.delete_subject("s", permanent=True)
    with pytest.raises(SubjectNotFoundError):
        await registry.delete_subject("s")


async def test_in_memory_verdict_and_details_are_the_servers() -> None:
    """The in-memory registry runs the server's check, so tests cannot drift from it."""
    registry = InMemorySchemaRegistryClient(compatibility="FULL")
    await registry.register_schema("s", record(A))
    candidate = record(A, B_REQUIRED)
    result = await registry.test_compatibility("s", candidate)
    old = parse_schema(json.dumps({"type": "record", "name": "R", "fields": [A]}))
    new = parse_schema(candidate.schema_str)
    prior = [PriorSchema(1, old.schema, old.canonical)]
    server = check(CompatibilityLevel.FULL, new.schema, prior)
    assert not result.is_compatible
    assert [m for m in result.messages if "errorType" in m] == [
        m for m in server if "errorType" in m
    ]
    assert "{oldSchemaVersion: 1}" in result.messages
