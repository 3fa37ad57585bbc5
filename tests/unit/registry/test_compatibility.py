"""Golden compatibility cases for every level, including transitivity over three versions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streaming.registry.avro_schema import parse_schema
from streaming.registry.model import CompatibilityLevel as L
from streaming.serde.compatibility import PriorSchema, check


def record(*fields: dict[str, Any], name: str = "Rec", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields), **extra}


def f(name: str, kind: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, **extra}


def enum(symbols: list[str], **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "Colour", "symbols": symbols, **extra}


def fixed(size: int) -> dict[str, Any]:
    return {"type": "fixed", "name": "Hash", "size": size}


def inner(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "Inner", "fields": list(fields)}


A = f("a", "string")

# (case, old, new, new-reads-old (backward ok), old-reads-new (forward ok))
GOLDEN: list[tuple[str, dict[str, Any], dict[str, Any], bool, bool]] = [
    ("field added with default", record(A), record(A, f("b", "int", default=0)), True, True),
    ("field added without default", record(A), record(A, f("b", "int")), False, True),
    ("field removed with default", record(A, f("b", "int", default=0)), record(A), True, True),
    ("field removed without default", record(A, f("b", "int")), record(A), True, False),
    ("int -> long", record(f("n", "int")), record(f("n", "long")), True, False),
    ("long -> float", record(f("n", "long")), record(f("n", "float")), True, False),
    ("float -> double", record(f("n", "float")), record(f("n", "double")), True, False),
    ("int -> double", record(f("n", "int")), record(f("n", "double")), True, False),
    ("long -> int (narrowing)", record(f("n", "long")), record(f("n", "int")), False, True),
    ("string -> bytes", record(f("s", "string")), record(f("s", "bytes")), True, True),
    ("bytes -> string", record(f("s", "bytes")), record(f("s", "string")), True, True),
    ("string -> int", record(f("s", "string")), record(f("s", "int")), False, False),
    (
        "enum symbol added without enum default",
        record(f("c", enum(["RED", "GREEN"]))),
        record(f("c", enum(["RED", "GREEN", "BLUE"]))),
        True,
        False,
    ),
    (
        "enum symbol added with enum default",
        record(f("c", enum(["RED", "GREEN"], default="RED"))),
        record(f("c", enum(["RED", "GREEN", "BLUE"], default="RED"))),
        True,
        True,
    ),
    (
        "enum symbol removed without default",
        record(f("c", enum(["RED", "GREEN", "BLUE"]))),
        record(f("c", enum(["RED", "GREEN"]))),
        False,
        True,
    ),
    (
        "union widened",
        record(f("u", ["null", "string"], default=None)),
        record(f("u", ["null", "string", "int"], default=None)),
        True,
        False,
    ),
    (
        "union narrowed",
        record(f("u", ["null", "string", "int"], default=None)),
        record(f("u", ["null", "string"], default=None)),
        False,
        True,
    ),
    (
        "record renamed with alias",
        record(A, name="OldName"),
        record(A, name="NewName", aliases=["OldName"]),
        True,
        False,
    ),
    (
        "record renamed without alias",
        record(A, name="OldName"),
        record(A, name="NewName"),
        False,
        False,
    ),
    ("fixed size change", record(f("h", fixed(16))), record(f("h", fixed(32))), False, False),
    (
        "nested record: field added without default",
        record(f("i", inner(f("x", "int")))),
        record(f("i", inner(f("x", "int"), f("y", "int")))),
        False,
        True,
    ),
    (
        "nested record: field added with default",
        record(f("i", inner(f("x", "int")))),
        record(f("i", inner(f("x", "int"), f("y", "int", default=1)))),
        True,
        True,
    ),
    (
        "nested record: field type narrowed",
        record(f("i", inner(f("x", "long")))),
        record(f("i", inner(f("x", "int")))),
        False,
        True,
    ),
]

LEVELS = list(L)


def prior(*schemas: dict[str, Any]) -> list[PriorSchema]:
    out = []
    for number, schema in enumerate(schemas, start=1):
        parsed = parse_schema(json.dumps(schema))
        out.append(PriorSchema(number, parsed.schema, parsed.canonical))
    return out


def parsed(schema: dict[str, Any]) -> Any:
    return parse_schema(json.dumps(schema)).schema


def expected(level: L, backward: bool, forward: bool) -> bool:
    if level is L.NONE:
        return True
    return (backward or not level.backward) and (forward or not level.forward)


@pytest.mark.parametrize("level", LEVELS, ids=[lv.value for lv in LEVELS])
@pytest.mark.parametrize(
    ("case", "old", "new", "backward", "forward"), GOLDEN, ids=[g[0] for g in GOLDEN]
)
def test_golden_case_follows_level(
    level: L, case: str, old: dict[str, Any], new: dict[str, Any], backward: bool, forward: bool
) -> None:
    messages = check(level, parsed(new), prior(old))
    assert (not messages) is expected(level, backward, forward), (case, messages)


# Three versions where the newest is compatible with v2 but not with v1 (per direction).
TRANSITIVE = [
    (
        L.BACKWARD,
        [record(A), record(A, f("b", "int", default=0))],
        record(A, f("b", "int")),
    ),
    (
        L.FORWARD,
        [record(A, f("b", "int")), record(A, f("b", "int", default=0))],
        record(A),
    ),
    (
        L.FULL,
        [record(A, f("b", "int")), record(A, f("b", "int", default=0))],
        record(A),
    ),
]


@pytest.mark.parametrize(
    ("level", "history", "new"), TRANSITIVE, ids=[t[0].value for t in TRANSITIVE]
)
def test_transitive_level_checks_every_version_not_only_latest(
    level: L, history: list[dict[str, Any]], new: dict[str, Any]
) -> None:
    versions = prior(*history)
    assert check(level, parsed(new), versions) == []
    transitive = L(f"{level.value}_TRANSITIVE")
    messages = check(transitive, parsed(new), versions)
    assert messages
    assert "{oldSchemaVersion: 1}" in messages
    assert "{oldSchemaVersion: 2}" not in messages


def test_none_accepts_anything_and_empty_history_is_compatible() -> None:
    assert check(L.NONE, parsed(record(f("a", "int"))), prior(record(f("a", "string")))) == []
    assert check(L.FULL_TRANSITIVE, parsed(record(A)), []) == []


def test_level_parse_is_case_insensitive_and_rejects_unknown() -> None:
    from streaming.registry.errors import InvalidCompatibilityLevel

    assert L.parse("full_transitive") is L.FULL_TRANSITIVE
    with pytest.raises(InvalidCompatibilityLevel):
        L.parse("SIDEWAYS")
    with pytest.raises(InvalidCompatibilityLevel):
        L.parse(None)
