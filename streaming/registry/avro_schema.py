"""Avro schema parsing for the registry: references, validation, canonical text.

The ``avro`` package parses (it is also what the compatibility checker needs); named
types that live in other subjects are resolved through ``references`` recursively and
parsed into one shared ``Names`` table, so the main schema can use them by name.

Two text forms are derived from a parsed schema:
- ``canonical``: compact JSON as re-serialised by avro (what we store and serve; two
  spellings of the same schema, e.g. ``{"type":"string"}`` and ``"string"``, agree);
- ``normalized``: ``canonical`` with object keys sorted, for ``?normalize=true``.

Parsing is CPU work that grows with the schema: the registry runs it off the event loop
(:mod:`streaming.registry.work`).
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import avro.errors
import avro.name
import avro.schema

from streaming.registry.errors import InvalidSchema, RegistryError
from streaming.registry.model import AVRO, SUPPORTED_TYPES, Reference, SchemaVersion

MAX_REFERENCE_DEPTH = 32

Resolver = Callable[[Reference], SchemaVersion]
"""Returns the referenced subject version or raises a :class:`RegistryError`."""


@dataclass(frozen=True, slots=True)
class ParsedSchema:
    schema: avro.schema.Schema
    canonical: str
    normalized: str


class IndexedRecordSchema(avro.schema.RecordSchema):
    """A record whose name -> field map is built once.

    avro's ``RecordSchema.fields_dict`` builds a new dict on every access, and its
    compatibility checker reads it once per reader field: quadratic in the field count
    (17 s for an 8,000-field record). A parsed schema never changes, so one map will do.
    """

    @functools.cached_property
    def fields_dict(self) -> dict[str, avro.schema.Field]:
        return {field.name: field for field in self.fields}


_make_field_objects = avro.schema.RecordSchema.make_field_objects


def _fields_once_each(
    field_data: Sequence[Any], names: avro.name.Names, validate_names: bool = True
) -> list[avro.schema.Field]:
    """avro's ``make_field_objects``, one field at a time, with duplicates found in a set.

    avro checks each new field name against a list of the names so far (quadratic: 4 s
    for a 20,000-field record); building each field through avro itself keeps its
    validation and errors, only the duplicate check becomes linear.
    """
    fields: list[avro.schema.Field] = []
    seen: set[str] = set()
    for data in field_data:
        [field] = _make_field_objects([data], names, validate_names=validate_names)
        if field.name in seen:
            raise avro.errors.SchemaParseException(f"Field name {field.name} already in use.")
        seen.add(field.name)
        fields.append(field)
    return fields


avro.schema.RecordSchema.make_field_objects = staticmethod(_fields_once_each)  # type: ignore[method-assign]


def _index_records(names: avro.name.Names) -> None:
    """Give every record parsed into ``names`` a cached field map (see IndexedRecordSchema)."""
    for named in names.names.values():
        if type(named) is avro.schema.RecordSchema:
            named.__class__ = IndexedRecordSchema


def _dump(data: object, *, sort: bool = False) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=sort)


def _tidy(data: Any) -> Any:
    """Put ``name`` first in field objects, as Confluent (Java Avro) prints them."""
    if isinstance(data, list):
        return [_tidy(item) for item in data]
    if not isinstance(data, dict):
        return data
    out = {key: _tidy(value) for key, value in data.items()}
    if "fields" in out and isinstance(out["fields"], list):
        out["fields"] = [
            {"name": f["name"], **{k: v for k, v in f.items() if k != "name"}}
            if isinstance(f, dict) and "name" in f
            else f
            for f in out["fields"]
        ]
    return out


def _load_json(text: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidSchema(f"Invalid schema: not valid JSON ({exc})") from exc


def _load_references(
    refs: Sequence[Reference],
    resolve: Resolver,
    names: avro.name.Names,
    seen: set[tuple[str, int]],
    depth: int,
) -> None:
    if depth > MAX_REFERENCE_DEPTH:
        raise InvalidSchema(f"Invalid schema: references nested deeper than {MAX_REFERENCE_DEPTH}")
    for ref in refs:
        key = (ref.subject, ref.version)
        if key in seen:
            continue
        seen.add(key)
        try:
            target = resolve(ref)
        except RegistryError as exc:
            raise InvalidSchema(
                f"Invalid schema: reference {ref.name!r} -> subject '{ref.subject}' version "
                f"{ref.version} cannot be resolved ({exc.message})"
            ) from exc
        _load_references(target.references, resolve, names, seen, depth + 1)
        _make(_load_json(target.schema), names, what=f"referenced schema {ref.name!r}")


def _make(data: object, names: avro.name.Names, *, what: str) -> avro.schema.Schema:
    try:
        with warnings.catch_warnings():
            # an unknown/misplaced logicalType is ignored (the Avro spec says so): no noise
            warnings.simplefilter("ignore", avro.errors.IgnoredLogicalType)
            return avro.schema.make_avsc_object(data, names)
    except Exception as exc:  # avro raises many types (incl. TypeError) on malformed input
        raise InvalidSchema(f"Invalid schema: {what}: {exc}") from exc


def _default_fits(schema: Any, value: object) -> bool:
    """Does the JSON default ``value`` fit ``schema`` (a union's default fits its first branch)?"""
    kind = schema.type
    if kind == "union":
        return _default_fits(schema.schemas[0], value)
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("int", "long"):
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("float", "double"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind in ("string", "bytes", "fixed"):
        return isinstance(value, str)
    if kind == "enum":
        return isinstance(value, str) and value in schema.symbols
    if kind == "array":
        return isinstance(value, list) and all(_default_fits(schema.items, v) for v in value)
    if kind == "map":
        return isinstance(value, dict) and all(
            _default_fits(schema.values, v) for v in value.values()
        )
    if kind in ("record", "error"):
        if not isinstance(value, dict):
            return False
        return all(
            _default_fits(f.type, value[f.name]) if f.name in value else f.has_default
            for f in schema.fields
        )
    return True


def _check_defaults(schema: Any, visited: set[int]) -> None:
    if id(schema) in visited:
        return
    visited.add(id(schema))
    kind = schema.type
    if kind in ("record", "error"):
        for f in schema.fields:
            if f.has_default and not _default_fits(f.type, f.default):
                raise InvalidSchema(
                    f"Invalid schema: default value {json.dumps(f.default)} of field "
                    f"'{f.name}' in '{schema.fullname}' does not match its type"
                )
            _check_defaults(f.type, visited)
    elif kind == "union":
        for branch in schema.schemas:
            _check_defaults(branch, visited)
    elif kind == "array":
        _check_defaults(schema.items, visited)
    elif kind == "map":
        _check_defaults(schema.values, visited)


def parse_schema(
    text: str,
    references: Sequence[Reference] = (),
    resolve: Resolver | None = None,
    *,
    schema_type: str = AVRO,
    normalize: bool = False,
) -> ParsedSchema:
    """Parse and validate ``text``; raise :class:`InvalidSchema` (42201) on any problem."""
    if schema_type not in SUPPORTED_TYPES:
        raise InvalidSchema(
            f"Invalid schema type {schema_type!r}: this registry supports {list(SUPPORTED_TYPES)}"
        )
    if not text.strip():
        raise InvalidSchema("Invalid schema: empty schema")
    data = _load_json(text)
    names = avro.name.Names()
    if references:
        if resolve is None:
            raise InvalidSchema("Invalid schema: references given but cannot be resolved here")
        _load_references(references, resolve, names, set(), 0)
    referenced = dict(names.names)
    schema = _make(data, names, what="schema")
    _index_records(names)
    try:
        _check_defaults(schema, set())
        out_names = avro.name.Names()
        out_names.names.update(referenced)
        as_json = _tidy(schema.to_json(out_names))
    except RegistryError:
        raise
    except Exception as exc:  # to_json/defaults walk on exotic input: still an invalid schema
        raise InvalidSchema(f"Invalid schema: {exc}") from exc
    canonical = _dump(as_json)
    normalized = _dump(as_json, sort=True)
    if normalize:
        canonical = normalized
    return ParsedSchema(schema=schema, canonical=canonical, normalized=normalized)


def normalized_text(text: str) -> str:
    """Sorted-key compact form of an already-canonical stored text (for normalize lookups)."""
    try:
        return _dump(json.loads(text), sort=True)
    except (ValueError, RecursionError):
        return text


def raw_json(text: str) -> Any:
    """The stored text as JSON (for ``/schema`` endpoints that return the bare schema)."""
    return json.loads(text)


__all__ = [
    "MAX_REFERENCE_DEPTH",
    "IndexedRecordSchema",
    "ParsedSchema",
    "Resolver",
    "normalized_text",
    "parse_schema",
    "raw_json",
]
