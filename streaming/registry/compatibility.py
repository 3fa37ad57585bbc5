"""Compatibility levels on top of avro's ``ReaderWriterCompatibilityChecker``.

The checker answers one question: can ``reader`` read what ``writer`` wrote? A level
only decides which pairs to ask about:

- BACKWARD: the new schema reads data written with the old one (reader=new, writer=old);
- FORWARD: old readers read data written with the new schema (reader=old, writer=new);
- FULL: both; NONE: no check;
- ``*_TRANSITIVE``: against every live version, otherwise only the latest one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
)

from streaming.registry.model import CompatibilityLevel


@dataclass(frozen=True, slots=True)
class PriorSchema:
    """An earlier live version of the subject, oldest first in the list passed in."""

    version: int
    schema: avro.schema.Schema
    text: str


def _pair(
    reader: avro.schema.Schema, writer: avro.schema.Schema
) -> SchemaCompatibilityResult | str:
    try:
        checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
        return checker.get_compatibility(reader=reader, writer=writer)
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
    level: CompatibilityLevel, new: avro.schema.Schema, old: avro.schema.Schema
) -> list[str]:
    """Messages describing why ``new`` is not ``level``-compatible with ``old`` (empty: ok)."""
    messages: list[str] = []
    if level.backward:
        messages += _describe(_pair(reader=new, writer=old), "new schema cannot read old data")
    if level.forward:
        messages += _describe(_pair(reader=old, writer=new), "old schema cannot read new data")
    return messages


def check(
    level: CompatibilityLevel, new: avro.schema.Schema, prior: Sequence[PriorSchema]
) -> list[str]:
    """Check ``new`` against the live versions ``prior`` (oldest first) as ``level`` demands."""
    if level is CompatibilityLevel.NONE or not prior:
        return []
    targets = prior if level.transitive else prior[-1:]
    messages: list[str] = []
    for old in reversed(targets):
        found = check_pair(level, new, old.schema)
        if found:
            messages += found
            messages.append(f"{{oldSchemaVersion: {old.version}}}")
            messages.append(f"{{oldSchema: '{old.text}'}}")
    if messages:
        messages.append(f"{{validateFields: 'false', compatibility: '{level.value}'}}")
    return messages


__all__ = ["PriorSchema", "check", "check_pair"]
