"""Local Avro contracts: find, load and parse the ``.avsc`` files that are the source of truth.

Each file defines one top-level named type. Named types defined in another file are used
by reference (Confluent schema references), so the catalog knows every file's
dependencies and parses them first. The files are found in an installed wheel
(``streaming/_schemas``, force-included at build time) or in a source checkout
(``<repo>/schemas``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro

from streaming.serde.errors import SchemaLoadError
from streaming.serde.schema import Schema, compact_json, external_references, schema_fullname

PARTITION_KEY_ATTRIBUTE = "x-partition-key"
PII_ATTRIBUTE = "pii"
PII_SUBJECT_ATTRIBUTE = "x-pii-subject"
"""Record-level: the (dotted) path of the field naming whose personal data the record holds."""


@dataclass(frozen=True, slots=True)
class LocalSchema:
    """One ``.avsc`` file: its named type, text and the named types it borrows."""

    fullname: str
    schema_str: str
    references: tuple[str, ...]
    path: str
    partition_key: str | None
    pii_fields: tuple[str, ...]
    pii_subject: str | None = None

    @classmethod
    def from_json(cls, definition: Any, path: str = "<memory>") -> LocalSchema:
        fullname = schema_fullname(definition)
        if fullname is None:
            raise SchemaLoadError(f"{path}: top level must be a named record, enum or fixed")
        key = definition.get(PARTITION_KEY_ATTRIBUTE)
        field_names = {f["name"] for f in definition.get("fields", ())}
        if key is not None and key not in field_names:
            raise SchemaLoadError(
                f"{path}: {PARTITION_KEY_ATTRIBUTE} names {key!r}, which is not a field"
            )
        pii_fields = tuple(_pii_paths(definition, "", path))
        if key is not None and key in pii_fields:
            raise SchemaLoadError(
                f"{path}: {PARTITION_KEY_ATTRIBUTE} {key!r} is marked pii; record keys are "
                "not encrypted, so partition by an id"
            )
        return cls(
            fullname=fullname,
            schema_str=compact_json(definition),
            references=tuple(sorted(external_references(definition))),
            path=path,
            partition_key=key,
            pii_fields=pii_fields,
            pii_subject=_pii_subject(definition, pii_fields, path),
        )

    @property
    def name(self) -> str:
        """The short name, e.g. ``OrderPlaced``."""
        return self.fullname.rpartition(".")[2]

    def definition(self) -> Any:
        """A fresh copy of the schema JSON (safe to mutate)."""
        return json.loads(self.schema_str)

    def to_schema(self) -> Schema:
        """The registry form without references (their versions are known only per registry)."""
        return Schema(self.schema_str)


_PII_TYPES = ("string", ["null", "string"], ["string", "null"])
"""What a field marked ``pii`` may be: producers replace its text with ciphertext text."""


def _pii_paths(node: Any, prefix: str, where: str = "<memory>") -> Iterator[str]:
    if not isinstance(node, dict):
        return
    for field in node.get("fields", ()):
        path = f"{prefix}{field['name']}"
        if field.get(PII_ATTRIBUTE) is True:
            if field["type"] not in _PII_TYPES:
                raise SchemaLoadError(
                    f"{where}: field {path} is marked pii but is not a string (or optional "
                    "string); producers encrypt marked values into text, so mark string fields"
                )
            yield path
        for branch in field["type"] if isinstance(field["type"], list) else [field["type"]]:
            if isinstance(branch, dict) and branch.get("type") in ("record", "error"):
                yield from _pii_paths(branch, f"{path}.", where)


def _field_at(definition: Any, dotted: str) -> Any:
    node: Any = definition
    field: Any = None
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        field = next((f for f in node.get("fields", ()) if f.get("name") == part), None)
        if field is None:
            return None
        branches = field["type"] if isinstance(field["type"], list) else [field["type"]]
        node = next((b for b in branches if isinstance(b, dict)), None)
    return field


def _pii_subject(definition: Any, pii_fields: tuple[str, ...], where: str) -> str | None:
    """The record's ``x-pii-subject``: required when a field is marked, never itself marked."""
    subject = definition.get(PII_SUBJECT_ATTRIBUTE)
    if subject is None:
        if pii_fields:
            raise SchemaLoadError(
                f"{where}: fields {', '.join(pii_fields)} are marked pii but the record names "
                f"no {PII_SUBJECT_ATTRIBUTE} (the field holding whose data it is, e.g. user_id)"
            )
        return None
    if not isinstance(subject, str) or _field_at(definition, subject) is None:
        raise SchemaLoadError(f"{where}: {PII_SUBJECT_ATTRIBUTE} names {subject!r}, not a field")
    if subject in pii_fields:
        raise SchemaLoadError(
            f"{where}: {PII_SUBJECT_ATTRIBUTE} {subject!r} is marked pii; the subject must stay "
            "readable (use an id, not a name or e-mail)"
        )
    return subject


class SchemaCatalog:
    """An immutable set of local schemas addressed by fullname."""

    def __init__(self, schemas: Iterable[LocalSchema]) -> None:
        self._schemas: dict[str, LocalSchema] = {}
        for schema in schemas:
            if schema.fullname in self._schemas:
                other = self._schemas[schema.fullname].path
                raise SchemaLoadError(f"{schema.fullname} is defined twice: {other}, {schema.path}")
            self._schemas[schema.fullname] = schema
        for schema in self._schemas.values():
            missing = [r for r in schema.references if r not in self._schemas]
            if missing:
                raise SchemaLoadError(
                    f"{schema.path}: uses {', '.join(missing)}, defined in no catalog file"
                )
        self._parsed: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_directories(cls, *directories: Path | str) -> SchemaCatalog:
        """Load every ``*.avsc`` below the given directories."""
        loaded = []
        for directory in directories:
            root = Path(directory)
            if not root.is_dir():
                raise SchemaLoadError(f"schema directory {root} does not exist")
            for path in sorted(root.rglob("*.avsc")):
                try:
                    definition = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    raise SchemaLoadError(f"{path}: cannot read schema JSON: {exc}") from exc
                loaded.append(LocalSchema.from_json(definition, str(path)))
        return cls(loaded)

    def __contains__(self, fullname: object) -> bool:
        return fullname in self._schemas

    def __iter__(self) -> Iterator[LocalSchema]:
        return iter(self._schemas.values())

    def __len__(self) -> int:
        return len(self._schemas)

    def get(self, fullname: str) -> LocalSchema:
        try:
            return self._schemas[fullname]
        except KeyError:
            raise SchemaLoadError(
                f"no local schema named {fullname!r}; known: {', '.join(sorted(self._schemas))}"
            ) from None

    def find(self, fullname: str) -> LocalSchema | None:
        """The schema named ``fullname``, or ``None``."""
        return self._schemas.get(fullname)

    def replace(self, *schemas: LocalSchema) -> SchemaCatalog:
        """A new catalog where ``schemas`` add to or override same-named entries."""
        merged = dict(self._schemas)
        merged.update({s.fullname: s for s in schemas})
        return SchemaCatalog(merged.values())

    def dependencies(self, fullname: str) -> list[LocalSchema]:
        """Transitive references of ``fullname``, each after its own dependencies."""
        ordered: list[LocalSchema] = []
        seen: set[str] = set()

        def visit(name: str, trail: tuple[str, ...]) -> None:
            if name in trail:
                raise SchemaLoadError(f"reference cycle: {' -> '.join((*trail, name))}")
            if name in seen:
                return
            for ref in self.get(name).references:
                visit(ref, (*trail, name))
            seen.add(name)
            ordered.append(self.get(name))

        visit(fullname, ())
        return ordered[:-1]

    def parsed(self, fullname: str) -> dict[str, Any]:
        """The fastavro-parsed schema with its referenced named types (cached)."""
        if fullname not in self._parsed:
            named: dict[str, Any] = {}
            try:
                for dep in self.dependencies(fullname):
                    fastavro.parse_schema(dep.definition(), named_schemas=named)
                parsed: Any = fastavro.parse_schema(
                    self.get(fullname).definition(), named_schemas=named
                )
            except (fastavro.schema.SchemaParseException, ValueError, TypeError, KeyError) as exc:
                raise SchemaLoadError(f"{fullname}: not a valid Avro schema: {exc}") from exc
            self._parsed[fullname] = parsed
        return self._parsed[fullname]


def schema_directories() -> list[Path]:
    """Where the bundled schemas are: the wheel's ``streaming/_schemas`` or the checkout's."""
    package_root = Path(__file__).resolve().parent.parent
    candidates = [package_root / "_schemas", package_root.parent / "schemas"]
    for candidate in candidates:
        if candidate.is_dir():
            return [candidate]
    raise SchemaLoadError(
        "bundled Avro schemas not found; looked in "
        + ", ".join(str(c) for c in candidates)
        + " (reinstall the package, or build the catalog with SchemaCatalog.from_directories)"
    )


@functools.cache
def default_catalog() -> SchemaCatalog:
    """The catalog of schemas shipped with this package (loaded once, immutable)."""
    return SchemaCatalog.from_directories(*schema_directories())


__all__ = [
    "PARTITION_KEY_ATTRIBUTE",
    "PII_ATTRIBUTE",
    "LocalSchema",
    "SchemaCatalog",
    "default_catalog",
    "schema_directories",
]
