"""THE Avro compatibility check: levels on top of avro's ``ReaderWriterCompatibilityChecker``.

Used by the registry service, the in-memory registry (:mod:`streaming.serde.memory`)
and replay's pre-check (:mod:`streaming.replay.schemacheck`), so a test against the
in-memory registry sees what the server would answer.

The checker answers one question: can ``reader`` read what ``writer`` wrote? A level
only decides which pairs to ask about:

- BACKWARD: the new schema reads data written with the old one (reader=new, writer=old);
- FORWARD: old readers read data written with the new schema (reader=old, writer=new);
- FULL: both; NONE: no check;
- ``*_TRANSITIVE``: against every live version, otherwise only the latest one.

A check may be given a :class:`Deadline` (the registry's raises 42201): the checker
looks at it before every schema node and gives up once it passed.

Wide records: avro's parser checks field names against a list and its checker rebuilds
``fields_dict`` on every access, both quadratic in the field count (seconds for thousands
of fields). Importing this module patches avro's ``RecordSchema.make_field_objects``
process-wide with a linear duplicate check (same validation and errors), and
:func:`index_records` gives parsed records a field map built once.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import avro.errors
import avro.name
import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
)

from streaming.errors import StreamingError

V = TypeVar("V")


class Deadline(Protocol):
    """Raises (one of our errors) from :meth:`check` once the work must give up."""

    def check(self) -> None: ...


LEVELS: tuple[str, ...] = (
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
)
"""Confluent's compatibility level names, the one list (the registry's enum matches it)."""


def is_transitive(level: str) -> bool:
    """``*_TRANSITIVE`` levels check every live version, the others only the latest."""
    return level.endswith("_TRANSITIVE")


def is_backward(level: str) -> bool:
    """BACKWARD and FULL levels: the new schema must read old data."""
    return level.startswith(("BACKWARD", "FULL"))


def is_forward(level: str) -> bool:
    """FORWARD and FULL levels: old schemas must read new data."""
    return level.startswith(("FORWARD", "FULL"))


def relevant(level: str, prior: Sequence[V]) -> Sequence[V]:
    """The prior versions (oldest first) ``level`` checks against: all, the latest or none."""
    if level == "NONE":
        return []
    return prior if is_transitive(level) else prior[-1:]


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


def index_records(names: avro.name.Names) -> None:
    """Give every record parsed into ``names`` a cached field map (see IndexedRecordSchema)."""
    for named in names.names.values():
        if type(named) is avro.schema.RecordSchema:
            named.__class__ = IndexedRecordSchema


@dataclass(frozen=True, slots=True)
class PriorSchema:
    """An earlier live version of the subject, oldest first in the list passed in."""

    version: int
    schema: avro.schema.Schema
    text: str


class _BoundedChecker(ReaderWriterCompatibilityChecker):
    """avro's checker, stopping once ``deadline`` passed (it recurses through this method)."""

    def __init__(self, deadline: Deadline | None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._deadline = deadline

    def get_compatibility(self, *args: Any, **kwargs: Any) -> SchemaCompatibilityResult:
        if self._deadline is not None:
            self._deadline.check()
        return super().get_compatibility(*args, **kwargs)


def _pair(
    reader: avro.schema.Schema, writer: avro.schema.Schema, deadline: Deadline | None
) -> SchemaCompatibilityResult | str:
    try:
        return _BoundedChecker(deadline).get_compatibility(reader=reader, writer=writer)
    except StreamingError:  # a passed deadline: give up, do not report it as a finding
        raise
    except Exception as exc:  # the checker raises on schema shapes it does not know
        return f"compatibility check failed: {exc}"


def _describe(result: SchemaCompatibilityResult | str, direction: str) -> list[str]:
    if isinstance(result, str):
        return [f"{{errorType:'CHECK_FAILED', description:'{result}'}}"]
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = sorted({i.name.upper() for i in result.incompatibilities}) or ["INCOMPATIBLE"]
    locations = ", ".join(sorted(result.locations))
    details = "; ".join(sorted(result.messages))
    return [
        f"{{errorType:'{kind}', description:'{direction}: {details}', "
        f"additionalInfo:'at {locations}'}}"
        for kind in kinds
    ]


def unreadable_reason(
    reader: avro.schema.Schema, writer: avro.schema.Schema, deadline: Deadline | None = None
) -> str | None:
    """Why ``reader`` cannot read data written with ``writer`` (None: it can)."""
    result = _pair(reader=reader, writer=writer, deadline=deadline)
    if isinstance(result, str):
        return result
    if result.compatibility is SchemaCompatibilityType.compatible:
        return None
    return "; ".join(sorted(result.messages)) or "incompatible"


def check_pair(
    level: str,
    new: avro.schema.Schema,
    old: avro.schema.Schema,
    deadline: Deadline | None = None,
) -> list[str]:
    """Messages describing why ``new`` is not ``level``-compatible with ``old`` (empty: ok)."""
    messages: list[str] = []
    if is_backward(level):
        result = _pair(reader=new, writer=old, deadline=deadline)
        messages += _describe(result, "new schema cannot read old data")
    if is_forward(level):
        result = _pair(reader=old, writer=new, deadline=deadline)
        messages += _describe(result, "old schema cannot read new data")
    return messages


def check(
    level: str,
    new: avro.schema.Schema,
    prior: Sequence[PriorSchema],
    deadline: Deadline | None = None,
) -> list[str]:
    """Check ``new`` against the live versions ``prior`` (oldest first) as ``level`` demands."""
    messages: list[str] = []
    for old in reversed(relevant(level, prior)):
        found = check_pair(level, new, old.schema, deadline)
        if found:
            messages += found
            messages.append(f"{{oldSchemaVersion: {old.version}}}")
            messages.append(f"{{oldSchema: '{old.text}'}}")
    if messages:
        messages.append(f"{{validateFields: 'false', compatibility: '{level}'}}")
    return messages


__all__ = [
    "LEVELS",
    "Deadline",
    "IndexedRecordSchema",
    "PriorSchema",
    "check",
    "check_pair",
    "index_records",
    "is_backward",
    "is_forward",
    "is_transitive",
    "relevant",
    "unreadable_reason",
]
