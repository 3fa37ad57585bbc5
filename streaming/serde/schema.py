"""Schema values exchanged with a registry, and pure helpers over Avro schema JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

AVRO_PRIMITIVES = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)
_NAMED_KINDS = frozenset({"record", "error", "enum", "fixed"})


@dataclass(frozen=True, slots=True)
class SchemaReference:
    """A named type that lives in another subject (Confluent schema references)."""

    name: str
    subject: str
    version: int


@dataclass(frozen=True, slots=True)
class Schema:
    """Schema text as a registry stores it, with its references."""

    schema_str: str
    schema_type: str = "AVRO"
    references: tuple[SchemaReference, ...] = ()

    @property
    def fullname(self) -> str | None:
        """Fully-qualified name of the top-level named type, if it is one."""
        try:
            return schema_fullname(json.loads(self.schema_str))
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """A schema registered under a subject: its global id and version in that subject."""

    schema_id: int
    subject: str
    version: int
    schema: Schema


@dataclass(frozen=True, slots=True)
class CompatibilityResult:
    """Outcome of a compatibility check; ``messages`` explain an incompatibility."""

    is_compatible: bool
    messages: tuple[str, ...] = ()


def _qualify(name: str, namespace: str) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def schema_fullname(schema: Any, namespace: str = "") -> str | None:
    """Fullname of a named schema dict (record, enum, fixed), else ``None``."""
    if isinstance(schema, Mapping) and schema.get("type") in _NAMED_KINDS:
        name = str(schema["name"])
        return _qualify(name, str(schema.get("namespace", namespace)))
    return None


def named_types(schema: Any) -> tuple[frozenset[str], frozenset[str]]:
    """``(defined, referenced)`` fullnames of named types in an Avro schema JSON value.

    Names referenced but not defined in the same document must come from elsewhere
    (schema references).
    """
    defined: set[str] = set()
    referenced: set[str] = set()

    def walk(node: Any, namespace: str) -> None:
        if isinstance(node, str):
            if node not in AVRO_PRIMITIVES:
                referenced.add(_qualify(node, namespace))
        elif isinstance(node, list):
            for item in node:
                walk(item, namespace)
        elif isinstance(node, Mapping):
            kind = node.get("type")
            fullname = schema_fullname(node, namespace)
            if fullname is not None:
                defined.add(fullname)
                inner_ns = fullname.rpartition(".")[0]
                for field in node.get("fields", ()):
                    walk(field["type"], inner_ns)
            elif kind == "array":
                walk(node["items"], namespace)
            elif kind == "map":
                walk(node["values"], namespace)
            else:
                walk(kind, namespace)

    walk(schema, "")
    return frozenset(defined), frozenset(referenced)


def external_references(schema: Any) -> frozenset[str]:
    """Fullnames a schema uses but does not define itself."""
    defined, referenced = named_types(schema)
    return referenced - defined


def compact_json(schema: Any) -> str:
    """Schema JSON without insignificant whitespace (the form we register)."""
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


__all__ = [
    "AVRO_PRIMITIVES",
    "CompatibilityResult",
    "RegisteredSchema",
    "Schema",
    "SchemaReference",
    "compact_json",
    "external_references",
    "named_types",
    "schema_fullname",
]
