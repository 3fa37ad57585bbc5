"""Validation of path segments and request bodies."""

from __future__ import annotations

import json

import pytest

from streaming.registry.errors import (
    InvalidCompatibilityLevel,
    InvalidMode,
    InvalidSchema,
    InvalidVersion,
    RequestError,
    SchemaNotFound,
)
from streaming.registry.model import CompatibilityLevel, Mode, Reference
from streaming.registry.requests import (
    compatibility_request,
    flag,
    mode_request,
    parse_schema_id,
    parse_version,
    schema_request,
)


@pytest.mark.parametrize(
    ("raw", "want"), [("latest", None), ("-1", None), ("1", 1), ("2147483647", 2147483647)]
)
def test_valid_versions(raw: str, want: int | None) -> None:
    assert parse_version(raw) == want


@pytest.mark.parametrize(
    "raw", ["0", "-2", "2147483648", "abc", "1.5", "1_0", " 1", "+1", "LATEST", ""]
)
def test_bad_versions_are_42202(raw: str) -> None:
    with pytest.raises(InvalidVersion) as info:
        parse_version(raw)
    assert info.value.error_code == 42202


@pytest.mark.parametrize("raw", ["0", "-1", "x", "99999999999999"])
def test_bad_schema_ids_are_not_found(raw: str) -> None:
    with pytest.raises(SchemaNotFound):
        parse_schema_id(raw)


def test_flags_accept_python_client_spelling() -> None:
    assert flag("True") and flag("true") and not flag("False") and not flag(None)


def test_schema_request_reads_fields_and_ignores_unknown_ones() -> None:
    body = {
        "schema": '"string"',
        "schemaType": "AVRO",
        "references": [{"name": "a.B", "subject": "b", "version": 1}],
        "metadata": {"x": 1},
        "ruleSet": None,
    }
    req = schema_request(json.dumps(body).encode())
    assert req.schema == '"string"'
    assert req.references == (Reference("a.B", "b", 1),)
    assert req.schema_id is None


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, 400),
        (b"", 400, 400),
        (b"[1,2]", 422, 422),
        (b'{"schema": "\\"int\\"", "id": "x"}', 422, 422),
    ],
)
def test_malformed_bodies(body: bytes, status: int, code: int) -> None:
    with pytest.raises(RequestError) as info:
        schema_request(body)
    assert info.value.http_status == status
    assert info.value.body()["error_code"] == code


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"schema": None},
        {"schema": {"type": "string"}},
        {"schema": '"int"', "schemaType": "XML"},
        {"schema": '"int"', "references": "nope"},
        {"schema": '"int"', "references": [{"name": "x"}]},
        {"schema": '"int"', "references": [{"name": "x", "subject": "s", "version": 0}]},
    ],
)
def test_invalid_schema_fields_are_42201(body: dict[str, object]) -> None:
    with pytest.raises(InvalidSchema):
        schema_request(json.dumps(body).encode())


def test_config_and_mode_bodies() -> None:
    assert compatibility_request(b'{"compatibility":"full"}') is CompatibilityLevel.FULL
    assert mode_request(b'{"mode":"IMPORT"}') is Mode.IMPORT
    with pytest.raises(InvalidCompatibilityLevel):
        compatibility_request(b'{"compatibility":"MAYBE"}')
    with pytest.raises(InvalidMode):
        mode_request(b'{"mode":1}')
