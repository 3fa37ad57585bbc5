"""Avro serializer and deserializer speaking Confluent wire format through a registry.

The hot path is: cached schema id -> 5 header bytes -> fastavro schemaless write (and the
reverse). Registry round trips happen once per (subject, schema) and once per schema id.
Every failure is a typed :mod:`streaming.serde.errors` error; no fastavro or httpx
exception escapes.
"""

from __future__ import annotations

import decimal
import io
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast, overload

import fastavro
from fastavro.read import SchemaResolutionError
from fastavro.schema import SchemaParseException

from streaming.serde.catalog import LocalSchema, SchemaCatalog, default_catalog
from streaming.serde.client import SchemaRegistry
from streaming.serde.context import SerializationContext
from streaming.serde.errors import (
    CorruptRecordError,
    RegistryError,
    SchemaLoadError,
    SchemaLookupError,
    SchemaMismatchError,
    SchemaNotFoundError,
    SerializeError,
    TruncatedRecordError,
    UnknownSchemaIdError,
)
from streaming.serde.schema import Schema, SchemaReference, schema_fullname
from streaming.serde.strategies import (
    SubjectNameStrategy,
    reference_subject_name,
    topic_name_strategy,
)
from streaming.serde.wire import HEADER_SIZE, frame_header, unframe_id

_WRITE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError, IndexError)
_READ_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    MemoryError,
    RecursionError,
    struct.error,
    decimal.InvalidOperation,
)


class AvroRecord(Protocol):
    """A typed value bound to a local schema (e.g. :class:`streaming.events.Event`).

    One that also has ``to_avro_datum()`` (the same value with record-typed union
    branches in fastavro's ``(fullname, dict)`` notation) is written from that.
    """

    avro_name: ClassVar[str]

    def to_avro_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class _WritePlan:
    subject: str
    schema_id: int
    header: bytes
    parsed: Any


class AvroSerializer:
    """Encode events or dicts as Confluent-framed Avro.

    ``schema`` is required for dict values; typed records carry their own schema name,
    looked up in ``catalog``. With ``auto_register`` the schema (and the named types it
    references, each under its fullname as subject) is registered on first use;
    otherwise it must already be registered and is looked up.
    """

    def __init__(
        self,
        registry: SchemaRegistry,
        *,
        schema: LocalSchema | None = None,
        catalog: SchemaCatalog | None = None,
        subject_name_strategy: SubjectNameStrategy = topic_name_strategy,
        auto_register: bool = True,
        normalize: bool = False,
    ) -> None:
        base = catalog if catalog is not None else default_catalog()
        self._catalog = base.replace(schema) if schema is not None else base
        self._schema = schema
        self._registry = registry
        self._strategy = subject_name_strategy
        self._auto_register = auto_register
        self._normalize = normalize
        self._ids: dict[tuple[str, str], int] = {}
        self._plans: dict[tuple[str, str, str], _WritePlan] = {}
        self._references: dict[str, SchemaReference] = {}

    @overload
    async def serialize(self, value: None, ctx: SerializationContext) -> None: ...
    @overload
    async def serialize(
        self, value: AvroRecord | Mapping[str, Any], ctx: SerializationContext
    ) -> bytes: ...
    async def serialize(
        self, value: AvroRecord | Mapping[str, Any] | None, ctx: SerializationContext
    ) -> bytes | None:
        """Framed bytes for ``value``; ``None`` stays ``None`` (a tombstone)."""
        if value is None:
            return None
        if isinstance(value, dict) or (
            not hasattr(type(value), "avro_name") and isinstance(value, Mapping)
        ):
            if self._schema is None:
                raise SerializeError(
                    "a dict value needs AvroSerializer(schema=...); or pass a typed event",
                    ctx=ctx,
                )
            fullname, record = self._schema.fullname, value
        else:
            typed = cast(AvroRecord, value)
            datum = getattr(typed, "to_avro_datum", None)  # tagged unions (Event): cheaper
            fullname, record = typed.avro_name, datum() if datum else typed.to_avro_dict()
        plan = self._plans.get((ctx.topic, ctx.field, fullname))
        if plan is None:
            plan = await self._plan(ctx, fullname)
        out = io.BytesIO()
        out.write(plan.header)
        try:
            fastavro.schemaless_writer(out, plan.parsed, record)
        except _WRITE_ERRORS as exc:
            raise SerializeError(
                f"value does not fit schema {fullname}: {exc}",
                ctx=ctx,
                subject=plan.subject,
                schema_id=plan.schema_id,
            ) from exc
        return out.getvalue()

    async def _plan(self, ctx: SerializationContext, fullname: str) -> _WritePlan:
        """Subject, schema id, wire header and parsed schema for one (topic, field, type).

        Cached: subject-name strategies are pure functions of topic, field and name.
        """
        local = self._schema if self._schema is not None else self._catalog.get(fullname)
        subject = self._strategy(ctx, local.fullname)
        schema_id = self._ids.get((subject, local.fullname))
        if schema_id is None:
            schema_id = await self._schema_id(subject, local)
            self._ids[(subject, local.fullname)] = schema_id
        plan = _WritePlan(
            subject, schema_id, frame_header(schema_id), self._catalog.parsed(local.fullname)
        )
        self._plans[(ctx.topic, ctx.field, fullname)] = plan
        return plan

    async def _schema_id(self, subject: str, local: LocalSchema) -> int:
        schema = Schema(
            local.schema_str,
            references=tuple([await self._reference(name) for name in local.references]),
        )
        if self._auto_register:
            return await self._registry.register_schema(subject, schema, normalize=self._normalize)
        try:
            found = await self._registry.lookup_schema(subject, schema, normalize=self._normalize)
        except RegistryError as exc:
            if exc.error_code in (40401, 40403):
                raise SerializeError(
                    f"{local.fullname} is not registered under subject {subject!r} and "
                    "auto_register is off; register it first (streaming registry CLI or "
                    "AvroSerializer(auto_register=True))",
                    subject=subject,
                ) from exc
            raise
        return found.schema_id

    async def _reference(self, fullname: str) -> SchemaReference:
        """Register or find a referenced named type under its own subject (depth first)."""
        cached = self._references.get(fullname)
        if cached is not None:
            return cached
        local = self._catalog.get(fullname)
        subject = reference_subject_name(fullname)
        schema = Schema(
            local.schema_str,
            references=tuple([await self._reference(name) for name in local.references]),
        )
        if self._auto_register:
            await self._registry.register_schema(subject, schema, normalize=self._normalize)
        found = await self._registry.lookup_schema(subject, schema, normalize=self._normalize)
        reference = SchemaReference(fullname, subject, found.version)
        self._references[fullname] = reference
        return reference


class _BrokenReferenceError(Exception):
    """Internal: a referenced schema exists but does not parse."""


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded record: the writer's schema id and schema, its name, and the value."""

    schema_id: int
    writer_schema: Schema
    record_name: str | None
    value: Any


@dataclass(frozen=True, slots=True)
class _Writer:
    schema: Schema
    parsed: Any
    fullname: str | None


_READING_KEYS = frozenset(
    [
        "type",
        "name",
        "fields",
        "symbols",
        "items",
        "values",
        "size",
        "default",
        "logicalType",
        "precision",
        "scale",
    ]
)


def reading_form(parsed: Any) -> Any:
    """What decoding with a fastavro-parsed schema depends on, named types included:
    docs, aliases, namespaces (names are already qualified) and custom attributes go.

    Two schemas with the same reading form decode the same bytes to the same values, so
    the reader can skip Avro schema resolution (a third of the decode time).
    """
    if isinstance(parsed, dict):
        named = parsed.get("__named_schemas")
        if named is not None:
            return {name: reading_form(node) for name, node in named.items()}, reading_form(
                {k: v for k, v in parsed.items() if k in _READING_KEYS}
            )
        return {k: reading_form(v) for k, v in parsed.items() if k in _READING_KEYS}
    if isinstance(parsed, list):
        return [reading_form(node) for node in parsed]
    return parsed


def without_uuid_types(definition: Any) -> Any:
    """``definition`` with ``{"type": "string", "logicalType": "uuid"}`` as plain strings."""
    if isinstance(definition, dict):
        if definition.get("logicalType") == "uuid" and definition.get("type") == "string":
            return "string"
        return {k: without_uuid_types(v) for k, v in definition.items()}
    if isinstance(definition, list | tuple):
        return type(definition)(without_uuid_types(node) for node in definition)
    return definition


class AvroDeserializer:
    """Decode Confluent-framed Avro, optionally into a local reader schema.

    Without a reader the value has the writer's shape. ``reader_schema`` reads every
    record into that schema; ``use_local_schemas`` reads each record into the catalog's
    schema of the same fullname when there is one (so a consumer on v2 reads v1 data).
    ``uuid_as_text`` leaves ``uuid`` values as their text, for a caller (a pydantic model)
    that parses them anyway: fastavro's ``uuid.UUID()`` is a fifth of its decode time.
    """

    def __init__(
        self,
        registry: SchemaRegistry,
        *,
        reader_schema: LocalSchema | None = None,
        use_local_schemas: bool = False,
        catalog: SchemaCatalog | None = None,
        uuid_as_text: bool = False,
    ) -> None:
        base = catalog if catalog is not None else default_catalog()
        self._catalog = base.replace(reader_schema) if reader_schema is not None else base
        self._reader_schema = reader_schema
        self._use_local = use_local_schemas
        self._uuid_as_text = uuid_as_text
        self._registry = registry
        self._writers: dict[int, _Writer] = {}
        self._readers: dict[int, Any] = {}

    @overload
    async def deserialize(self, data: None, ctx: SerializationContext) -> None: ...
    @overload
    async def deserialize(self, data: bytes, ctx: SerializationContext) -> Decoded: ...
    async def deserialize(self, data: bytes | None, ctx: SerializationContext) -> Decoded | None:
        """Decode one record; ``None`` (a tombstone) stays ``None``."""
        if data is None:
            return None
        schema_id = unframe_id(data, ctx)
        writer = self._writers.get(schema_id)
        if writer is None:
            writer = await self._load_writer(schema_id, data, ctx)
        if schema_id in self._readers:
            reader = self._readers[schema_id]
        else:
            reader = self._reader_for(writer, schema_id, data, ctx)
        stream = io.BytesIO(data)  # shares the bytes: no copy of the body
        stream.seek(HEADER_SIZE)
        try:
            value = fastavro.schemaless_reader(stream, writer.parsed, reader)
        except SchemaResolutionError as exc:
            raise SchemaMismatchError(
                f"writer schema {writer.fullname} cannot be read as the reader schema: {exc}",
                data=data,
                ctx=ctx,
                schema_id=schema_id,
            ) from exc
        except EOFError as exc:
            raise TruncatedRecordError(
                f"Avro body ended early: {exc}", data=data, ctx=ctx, schema_id=schema_id
            ) from exc
        except _READ_ERRORS as exc:
            raise CorruptRecordError(
                f"Avro body does not decode: {exc!r}", data=data, ctx=ctx, schema_id=schema_id
            ) from exc
        left = len(data) - stream.tell()
        if left:
            raise CorruptRecordError(
                f"{left} byte(s) left over after the record",
                data=data,
                ctx=ctx,
                schema_id=schema_id,
            )
        return Decoded(schema_id, writer.schema, writer.fullname, value)

    async def _load_writer(self, schema_id: int, data: bytes, ctx: SerializationContext) -> _Writer:
        try:
            schema = await self._registry.get_schema(schema_id)
            named: dict[str, Any] = {}
            await self._parse_references(schema, named, set())
        except SchemaNotFoundError as exc:
            raise UnknownSchemaIdError(
                f"the registry has no schema with id {schema_id}",
                data=data,
                ctx=ctx,
                schema_id=schema_id,
            ) from exc
        except _BrokenReferenceError as exc:
            raise SchemaMismatchError(
                str(exc), data=data, ctx=ctx, schema_id=schema_id
            ) from exc.__cause__
        except RegistryError as exc:
            raise SchemaLookupError(
                f"could not fetch writer schema {schema_id}: {exc}",
                data=data,
                ctx=ctx,
                schema_id=schema_id,
            ) from exc
        if schema.schema_type != "AVRO":
            raise SchemaMismatchError(
                f"schema {schema_id} is {schema.schema_type}, not AVRO",
                data=data,
                ctx=ctx,
                schema_id=schema_id,
            )
        try:
            definition = self._definition(schema)
            parsed = fastavro.parse_schema(definition, named_schemas=named)
        except (SchemaParseException, ValueError, TypeError, KeyError) as exc:
            raise SchemaMismatchError(
                f"writer schema {schema_id} is not usable Avro: {exc}",
                data=data,
                ctx=ctx,
                schema_id=schema_id,
            ) from exc
        writer = _Writer(schema, parsed, schema_fullname(definition))
        self._writers[schema_id] = writer
        return writer

    async def _parse_references(
        self,
        schema: Schema,
        named: dict[str, Any],
        seen: set[tuple[str, int]],
    ) -> None:
        """Parse referenced named types into ``named``, dependencies first."""
        for ref in schema.references:
            if (ref.subject, ref.version) in seen:
                continue
            seen.add((ref.subject, ref.version))
            found = await self._registry.get_version(ref.subject, ref.version)
            await self._parse_references(found.schema, named, seen)
            try:
                fastavro.parse_schema(self._definition(found.schema), named_schemas=named)
            except (SchemaParseException, ValueError, TypeError, KeyError) as exc:
                # Not retriable: the registry will keep serving the same broken text.
                raise _BrokenReferenceError(
                    f"referenced schema {ref.subject} v{ref.version} is not valid Avro: {exc}"
                ) from exc

    def _reader_for(
        self, writer: _Writer, schema_id: int, data: bytes, ctx: SerializationContext
    ) -> Any:
        """The parsed reader schema for a writer, or ``None`` to read as written."""
        local: LocalSchema | None = self._reader_schema
        if local is None and self._use_local and writer.fullname is not None:
            local = self._catalog.find(writer.fullname)
        reader = None
        if local is not None:
            try:
                if not self._same_schema(writer, local):
                    reader = self._catalog.parsed(local.fullname)
            except SchemaLoadError as exc:
                raise SchemaMismatchError(
                    f"local reader schema is unusable: {exc}",
                    data=data,
                    ctx=ctx,
                    schema_id=schema_id,
                ) from exc
        self._readers[schema_id] = reader
        return reader

    def _definition(self, schema: Schema) -> Any:
        """A writer schema's JSON as this deserializer reads with it."""
        definition = json.loads(schema.schema_str)
        return without_uuid_types(definition) if self._uuid_as_text else definition

    def _same_schema(self, writer: _Writer, local: LocalSchema) -> bool:
        """True when reading with ``local`` (and its references) equals reading as written."""
        ours = reading_form(self._catalog.parsed(local.fullname))
        if self._uuid_as_text:  # the writer's uuid types are plain strings here
            ours = without_uuid_types(ours)
        return bool(reading_form(writer.parsed) == ours)


__all__ = ["AvroDeserializer", "AvroRecord", "AvroSerializer", "Decoded"]
