"""Validating what arrives over HTTP: path segments, query flags and JSON bodies.

Pure functions raising Confluent-coded errors, so the rules are unit-tested without a
server. Unknown body fields (``metadata``, ``ruleSet``, ...) are ignored like Confluent
does for clients that send ``Confluent-Accept-Unknown-Properties``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from streaming.registry.errors import (
    InvalidSchema,
    InvalidSubject,
    InvalidVersion,
    RequestError,
    SchemaNotFound,
)
from streaming.registry.model import AVRO, CompatibilityLevel, Mode, Reference, SchemaRequest

MAX_INT32 = 2**31 - 1
_INT = re.compile(r"-?[0-9]{1,12}")
_TRUE = {"true", "1", "yes"}
# Confluent knows these types; we store Avro only and answer the others with 42201.
_KNOWN_TYPES = {"AVRO", "JSON", "PROTOBUF"}


def parse_subject(raw: str) -> str:
    """A subject path segment. ``.`` and ``..`` (URL path resolution removes them) and
    control characters (which clients cannot put in a request line) are 42208."""
    if raw in (".", "..") or any(unicodedata.category(c) == "Cc" for c in raw):
        raise InvalidSubject(raw)
    return raw


def parse_version(raw: str) -> int | None:
    """``latest`` / ``-1`` -> None, ``1..2^31-1`` -> int, anything else -> 42202."""
    if raw == "latest":
        return None
    if not _INT.fullmatch(raw):
        raise InvalidVersion(raw)
    number = int(raw)
    if number == -1:
        return None
    if 1 <= number <= MAX_INT32:
        return number
    raise InvalidVersion(raw)


def parse_schema_id(raw: str) -> int:
    """A global id path segment; anything that is not a positive int32 is simply not found."""
    if not _INT.fullmatch(raw) or not 0 < int(raw) <= MAX_INT32:
        raise SchemaNotFound(f"Schema {raw} not found")
    return int(raw)


def flag(value: str | None) -> bool:
    """Query booleans; the Python client sends ``True``/``False``."""
    return value is not None and value.strip().lower() in _TRUE


def load_json(body: bytes) -> Any:
    """Body bytes as JSON; 400 like Confluent's JSON parser error when malformed."""
    if not body.strip():
        raise RequestError(400, "Request body is empty; send a JSON object")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise RequestError(400, f"Unexpected JSON in request body: {exc}") from exc


def _object(body: bytes) -> dict[str, Any]:
    data = load_json(body)
    if not isinstance(data, dict):
        raise RequestError(422, "Unprocessable entity: the request body must be a JSON object")
    return data


def _optional_int(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(422, f"Unprocessable entity: '{name}' must be an integer")
    if name == "id" and value < 0:
        return None  # Confluent clients send id=-1 / version=-1 for "not given"
    if name == "version" and value == -1:
        return None
    if not 0 < value <= MAX_INT32:
        raise RequestError(422, f"Unprocessable entity: '{name}' {value} is out of range")
    return value


def _references(raw: object) -> tuple[Reference, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidSchema("Invalid schema: 'references' must be a list")
    refs = []
    for item in raw:
        if not isinstance(item, dict):
            raise InvalidSchema("Invalid schema: each reference must be an object")
        name, subject, version = item.get("name"), item.get("subject"), item.get("version")
        if not isinstance(name, str) or not name or not isinstance(subject, str) or not subject:
            raise InvalidSchema("Invalid schema: a reference needs 'name' and 'subject' strings")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidSchema(f"Invalid schema: reference {name!r} needs a version >= 1")
        refs.append(Reference(name, subject, version))
    return tuple(refs)


def schema_request(body: bytes) -> SchemaRequest:
    """A register / lookup / compatibility body: ``schema`` + optional type, refs, id."""
    data = _object(body)
    schema = data.get("schema")
    if schema is None:
        raise InvalidSchema("Invalid schema: the 'schema' field is missing or null")
    if isinstance(schema, dict | list):
        raise InvalidSchema("Invalid schema: 'schema' must be a string holding the schema JSON")
    if not isinstance(schema, str):
        schema = json.dumps(schema)
    schema_type = data.get("schemaType") or AVRO
    if not isinstance(schema_type, str) or schema_type not in _KNOWN_TYPES:
        raise InvalidSchema(f"Invalid schema type {schema_type!r}; this registry stores AVRO")
    return SchemaRequest(
        schema=schema,
        references=_references(data.get("references")),
        schema_type=schema_type,
        schema_id=_optional_int(data, "id"),
        version=_optional_int(data, "version"),
    )


def compatibility_request(body: bytes) -> CompatibilityLevel:
    data = _object(body)
    return CompatibilityLevel.parse(data.get("compatibility", data.get("compatibilityLevel")))


def mode_request(body: bytes) -> Mode:
    return Mode.parse(_object(body).get("mode"))


__all__ = [
    "MAX_INT32",
    "compatibility_request",
    "flag",
    "load_json",
    "mode_request",
    "parse_schema_id",
    "parse_subject",
    "parse_version",
    "schema_request",
]
