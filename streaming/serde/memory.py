"""An in-memory schema registry with the same interface as the HTTP client.

For unit tests (ours and users'): global ids shared across subjects, versions per
subject, soft/hard deletes, schema references and the seven compatibility levels
(checked with ``avro.compatibility``). ``calls`` counts requests so tests can prove
that callers cache.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import avro.errors
import avro.schema
from avro.name import Names

from streaming.serde import compatibility
from streaming.serde.client import COMPATIBILITY_LEVELS, Version
from streaming.serde.errors import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    InvalidVersionError,
    RegistryError,
    SchemaNotFoundError,
    SubjectNotFoundError,
    VersionNotFoundError,
)
from streaming.serde.schema import CompatibilityResult, RegisteredSchema, Schema


@dataclass
class _Version:
    version: int
    schema_id: int
    deleted: bool = False


def _identity(schema: Schema) -> tuple[str, str, tuple[Any, ...]]:
    try:
        text = json.dumps(json.loads(schema.schema_str), sort_keys=True, separators=(",", ":"))
    except ValueError:
        text = schema.schema_str
    return schema.schema_type, text, schema.references


class InMemorySchemaRegistryClient:
    """A registry that lives in this process; not shared, not persistent."""

    def __init__(self, *, compatibility: str = "BACKWARD") -> None:
        self._global_level = compatibility
        self._levels: dict[str, str] = {}
        self._schemas: dict[int, Schema] = {}
        self._ids: dict[tuple[str, str, tuple[Any, ...]], int] = {}
        self._subjects: dict[str, list[_Version]] = {}
        self.calls: Counter[str] = Counter()

    async def aclose(self) -> None:
        return None

    def _live(self, subject: str) -> list[_Version]:
        versions = [v for v in self._subjects.get(subject, []) if not v.deleted]
        if not versions:
            raise SubjectNotFoundError(
                f"Subject '{subject}' not found.", status=404, error_code=40401
            )
        return versions

    def _find(self, subject: str, version: Version) -> _Version:
        live = self._live(subject)
        if version == "latest":
            return live[-1]
        if not isinstance(version, int) or version < 1:
            raise InvalidVersionError(
                f"The specified version '{version}' is not a valid version id.",
                status=422,
                error_code=42202,
            )
        for item in live:
            if item.version == version:
                return item
        raise VersionNotFoundError(f"Version {version} not found.", status=404, error_code=40402)

    def _registered(self, subject: str, item: _Version) -> RegisteredSchema:
        return RegisteredSchema(
            item.schema_id, subject, item.version, self._schemas[item.schema_id]
        )

    def _parse(self, schema: Schema) -> avro.schema.Schema:
        """Parse with references resolved from their subjects (depth first)."""
        if schema.schema_type != "AVRO":
            raise InvalidSchemaError(
                f"schema type {schema.schema_type} is not supported", status=422, error_code=42201
            )
        names = Names(validate_names=False)
        seen: set[tuple[str, int]] = set()

        def add(current: Schema) -> avro.schema.Schema:
            for ref in current.references:
                if (ref.subject, ref.version) in seen:
                    continue
                seen.add((ref.subject, ref.version))
                try:
                    found = self._find(ref.subject, ref.version)
                except RegistryError as exc:
                    raise InvalidSchemaError(
                        f"reference {ref.name} -> {ref.subject} v{ref.version} not found",
                        status=422,
                        error_code=42201,
                    ) from exc
                add(self._schemas[found.schema_id])
            return avro.schema.make_avsc_object(json.loads(current.schema_str), names)

        try:
            parsed = add(schema)
            compatibility.index_records(names)
            return parsed
        except (avro.errors.AvroException, ValueError, TypeError, KeyError) as exc:
            raise InvalidSchemaError(
                f"Invalid schema: {exc}", status=422, error_code=42201
            ) from exc

    def _check(self, subject: str, schema: Schema, against: list[_Version]) -> CompatibilityResult:
        """The server's check (:mod:`streaming.serde.compatibility`), so the two agree."""
        level = self._levels.get(subject, self._global_level)
        targets = compatibility.relevant(level, against)
        if not targets:
            return CompatibilityResult(True)
        prior = [
            compatibility.PriorSchema(
                item.version,
                self._parse(self._schemas[item.schema_id]),
                self._schemas[item.schema_id].schema_str,
            )
            for item in targets
        ]
        messages = compatibility.check(level, self._parse(schema), prior)
        return CompatibilityResult(not messages, tuple(messages))

    async def register_schema(
        self, subject: str, schema: Schema, *, normalize: bool = False
    ) -> int:
        self.calls["register_schema"] += 1
        self._parse(schema)
        key = _identity(schema)
        versions = self._subjects.setdefault(subject, [])
        existing_id = self._ids.get(key)
        for item in versions:
            if not item.deleted and item.schema_id == existing_id:
                return item.schema_id
        live = [v for v in versions if not v.deleted]
        result = self._check(subject, schema, live)
        if not result.is_compatible:
            raise IncompatibleSchemaError(
                "Schema being registered is incompatible with an earlier schema; "
                + "; ".join(result.messages),
                status=409,
                error_code=409,
            )
        if existing_id is None:
            existing_id = max(self._schemas, default=0) + 1
            self._schemas[existing_id] = schema
            self._ids[key] = existing_id
        next_version = max((v.version for v in versions), default=0) + 1
        versions.append(_Version(next_version, existing_id))
        return existing_id

    async def lookup_schema(
        self, subject: str, schema: Schema, *, normalize: bool = False
    ) -> RegisteredSchema:
        self.calls["lookup_schema"] += 1
        schema_id = self._ids.get(_identity(schema))
        for item in self._live(subject):
            if item.schema_id == schema_id:
                return self._registered(subject, item)
        raise SchemaNotFoundError("Schema not found", status=404, error_code=40403)

    async def get_schema(self, schema_id: int) -> Schema:
        self.calls["get_schema"] += 1
        try:
            return self._schemas[schema_id]
        except KeyError:
            raise SchemaNotFoundError(
                f"Schema {schema_id} not found", status=404, error_code=40403
            ) from None

    async def get_version(self, subject: str, version: Version) -> RegisteredSchema:
        self.calls["get_version"] += 1
        return self._registered(subject, self._find(subject, version))

    async def get_latest_version(self, subject: str) -> RegisteredSchema:
        return await self.get_version(subject, "latest")

    async def get_versions(self, subject: str) -> list[int]:
        self.calls["get_versions"] += 1
        return [v.version for v in self._live(subject)]

    async def get_subjects(self) -> list[str]:
        self.calls["get_subjects"] += 1
        return sorted(s for s, vs in self._subjects.items() if any(not v.deleted for v in vs))

    async def test_compatibility(
        self, subject: str, schema: Schema, version: Version = "latest"
    ) -> CompatibilityResult:
        self.calls["test_compatibility"] += 1
        if subject not in self._subjects or not any(not v.deleted for v in self._subjects[subject]):
            self._parse(schema)
            return CompatibilityResult(True)
        live = self._live(subject)
        if version != "latest":
            live = [v for v in live if v.version <= self._find(subject, version).version]
        return self._check(subject, schema, live)

    async def get_compatibility(self, subject: str | None = None) -> str:
        return (
            self._global_level if subject is None else self._levels.get(subject, self._global_level)
        )

    async def set_compatibility(self, level: str, subject: str | None = None) -> str:
        if level not in COMPATIBILITY_LEVELS:
            raise ValueError(
                f"compatibility level must be one of {', '.join(COMPATIBILITY_LEVELS)}"
            )
        if subject is None:
            self._global_level = level
        else:
            self._levels[subject] = level
        return level

    async def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        self.calls["delete_subject"] += 1
        versions = self._subjects.get(subject, [])
        if not versions:
            raise SubjectNotFoundError(
                f"Subject '{subject}' not found.", status=404, error_code=40401
            )
        for item in versions:
            item.deleted = True
        if permanent:
            del self._subjects[subject]
        return [v.version for v in versions]


__all__ = ["InMemorySchemaRegistryClient"]
