"""Plain values the registry keeps: levels, modes, references and subject versions."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streaming.registry.errors import InvalidCompatibilityLevel, InvalidMode
from streaming.serde import compatibility

AVRO = "AVRO"
SUPPORTED_TYPES: tuple[str, ...] = (AVRO,)


class CompatibilityLevel(enum.StrEnum):
    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @classmethod
    def parse(cls, value: object) -> CompatibilityLevel:
        """Case-insensitive, like Confluent; anything else is a 42203."""
        if isinstance(value, str):
            try:
                return cls(value.upper())
            except ValueError:
                pass
        raise InvalidCompatibilityLevel(value)

    @property
    def transitive(self) -> bool:
        return compatibility.is_transitive(self.value)

    @property
    def backward(self) -> bool:
        return compatibility.is_backward(self.value)

    @property
    def forward(self) -> bool:
        return compatibility.is_forward(self.value)


DEFAULT_COMPATIBILITY = CompatibilityLevel.BACKWARD


class Mode(enum.StrEnum):
    READWRITE = "READWRITE"
    READONLY = "READONLY"
    IMPORT = "IMPORT"

    @classmethod
    def parse(cls, value: object) -> Mode:
        if isinstance(value, str):
            try:
                return cls(value.upper())
            except ValueError:
                pass
        raise InvalidMode(value)


DEFAULT_MODE = Mode.READWRITE


@dataclass(frozen=True, slots=True, order=True)
class Reference:
    """A named type defined in ``subject`` at ``version`` (Confluent's reference triple)."""

    name: str
    subject: str
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "version": self.version}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reference:
        return cls(str(data["name"]), str(data["subject"]), int(data["version"]))


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One registered ``(subject, version)``; the same ``schema_id`` may appear under many."""

    subject: str
    version: int
    schema_id: int
    schema: str
    references: tuple[Reference, ...] = ()
    schema_type: str = AVRO
    deleted: bool = False

    def to_json(self) -> dict[str, Any]:
        """The ``GET /subjects/{s}/versions/{v}`` body (schemaType omitted for Avro)."""
        return {
            "subject": self.subject,
            "version": self.version,
            "id": self.schema_id,
            **self.body.to_json(),
        }

    @property
    def body(self) -> SchemaBody:
        """What this version's global id stands for."""
        return SchemaBody(self.schema, self.references, self.schema_type)


@dataclass(frozen=True, slots=True)
class SchemaBody:
    """What one global id stands for: schema text, type and references."""

    schema: str
    references: tuple[Reference, ...] = ()
    schema_type: str = AVRO

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.schema_type != AVRO:
            out["schemaType"] = self.schema_type
        if self.references:
            out["references"] = [r.to_json() for r in self.references]
        out["schema"] = self.schema
        return out


@dataclass(frozen=True, slots=True)
class SchemaRequest:
    """A validated register/lookup/compatibility request body."""

    schema: str
    references: tuple[Reference, ...] = ()
    schema_type: str = AVRO
    schema_id: int | None = None
    version: int | None = None


__all__ = [
    "AVRO",
    "DEFAULT_COMPATIBILITY",
    "DEFAULT_MODE",
    "SUPPORTED_TYPES",
    "CompatibilityLevel",
    "Mode",
    "Reference",
    "SchemaBody",
    "SchemaRequest",
    "SchemaVersion",
]
