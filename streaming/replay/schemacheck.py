"""Schema-aware replay pre-check: can the target's reader schema read every writer id?

Before a replay writes anything, the range is scanned for the schema ids in the wire
format header of each value; each writer schema is fetched from the registry and checked
against the reader with :mod:`streaming.serde.compatibility` (the registry's check).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import avro.errors
import avro.schema
from avro.name import Names

from streaming.errors import SerializationError
from streaming.serde import compatibility
from streaming.serde.client import SchemaRegistry
from streaming.serde.schema import Schema
from streaming.serde.wire import HEADER_SIZE, MAGIC_BYTE
from streaming.transport.base import Record


def schema_ids(records: Iterable[Record]) -> tuple[set[int], int]:
    """``(ids, unframed)``: writer schema ids of the values and how many were not framed.

    Tombstones are neither; they carry no schema.
    """
    ids: set[int] = set()
    unframed = 0
    for record in records:
        value = record.value
        if value is None:
            continue
        if len(value) < HEADER_SIZE or value[0] != MAGIC_BYTE:
            unframed += 1
        else:
            ids.add(int.from_bytes(value[1:HEADER_SIZE], "big"))
    return ids, unframed


async def parse_schema(registry: SchemaRegistry, schema: Schema) -> avro.schema.Schema:
    """Parse ``schema`` with its references resolved through the registry (depth first)."""
    names = Names(validate_names=False)
    seen: set[tuple[str, int]] = set()

    async def add(current: Schema) -> avro.schema.Schema:
        for ref in current.references:
            if (ref.subject, ref.version) in seen:
                continue
            seen.add((ref.subject, ref.version))
            found = await registry.get_version(ref.subject, ref.version)
            await add(found.schema)
        return avro.schema.make_avsc_object(json.loads(current.schema_str), names)

    try:
        return await add(schema)
    except (avro.errors.AvroException, ValueError, TypeError, KeyError) as exc:
        raise SerializationError(f"cannot parse schema: {exc}") from exc


async def unreadable_ids(
    registry: SchemaRegistry, reader: Schema, ids: Iterable[int]
) -> list[tuple[int, str]]:
    """The writer ids ``reader`` cannot read, each with the checker's reason."""
    reader_schema = await parse_schema(registry, reader)
    offending: list[tuple[int, str]] = []
    for schema_id in sorted(ids):
        writer = await parse_schema(registry, await registry.get_schema(schema_id))
        reason = compatibility.unreadable_reason(reader_schema, writer)
        if reason is not None:
            offending.append((schema_id, reason))
    return offending


__all__ = ["parse_schema", "schema_ids", "unreadable_ids"]
