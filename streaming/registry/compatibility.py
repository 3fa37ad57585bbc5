"""Compatibility levels on top of avro's ``ReaderWriterCompatibilityChecker``.

The checker answers one question: can ``reader`` read what ``writer`` wrote? A level
only decides which pairs to ask about:

- BACKWARD: the new schema reads data written with the old one (reader=new, writer=old);
- FORWARD: old readers read data written with the new schema (reader=old, writer=new);
- FULL: both; NONE: no check;
- ``*_TRANSITIVE``: against every live version, otherwise only the latest one.

A check may be given a :class:`~streaming.registry.work.Deadline`: the checker looks at
it before every schema node and gives up with 42201 once it passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
)

from streaming.registry.errors import SchemaWorkTimeout
from streaming.registry.model import CompatibilityLevel
from streaming.registry.work import Deadline

V = TypeVar("V")


def relevant(level: CompatibilityLevel, prior: Sequence[V]) -> Sequence[V]:
    """The prior versions (oldest first) ``level`` checks against: all, the latest or none."""
    if level is CompatibilityLevel.NONE:
        return []
    return prior if level.transitive else prior[-1:]


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
    except SchemaWorkTimeout:
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


def check_pair(
    level: CompatibilityLevel,
    new: avro.schema.Schema,
    old: avro.schema.Schema,
    deadline: Deadline | None = None,
) -> list[str]:
    """Messages describing why ``new`` is not ``level``-compatible with ``old`` (empty: ok)."""
    messages: list[str] = []
    if level.backward:
        result = _pair(reader=new, writer=old, deadline=deadline)
        messages += _describe(result, "new schema cannot read old data")
    if level.forward:
        result = _pair(reader=old, writer=new, deadline=deadline)
        messages += _describe(result, "old schema cannot read new data")
    return messages


def check(
    level: CompatibilityLevel,
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
        messages.append(f"{{validateFields: 'false', compatibility: '{level.value}'}}")
    return messages


__all__ = ["PriorSchema", "check", "check_pair", "relevant"]
