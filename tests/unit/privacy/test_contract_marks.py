"""The contracts mark personal data the way producers can encrypt it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streaming.events import EVENT_TYPES, UserRegistered
from streaming.events.audit import AuditEvent
from streaming.privacy import plan_for
from streaming.serde.catalog import LocalSchema, default_catalog
from streaming.serde.errors import SchemaLoadError

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


def _marked_fields(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        for field in node.get("fields", ()):
            if field.get("pii") is True:
                found.append(field)
            found.extend(_marked_fields(field["type"]))
    elif isinstance(node, list):
        for branch in node:
            found.extend(_marked_fields(branch))
    return found


@pytest.mark.parametrize("path", sorted(SCHEMAS.rglob("*.avsc")), ids=lambda p: p.name)
def test_every_marked_field_in_schemas_is_text_and_its_record_names_a_subject(path: Path) -> None:
    definition = json.loads(path.read_text())
    marked = _marked_fields(definition)
    for field in marked:
        assert field["type"] in ("string", ["null", "string"]), field["name"]
    if marked:
        subject = definition["x-pii-subject"]
        assert subject not in LocalSchema.from_json(definition).pii_fields


def test_the_models_know_which_fields_are_personal_data() -> None:
    user, audit = plan_for(UserRegistered), plan_for(AuditEvent)
    assert user is not None and audit is not None
    assert [p for p, _ in user.paths] == ["username", "email", "full_name"]
    assert [p for p, _ in audit.paths] == ["actor.username", "ip_address", "user_agent"]
    assert audit.subject_path == ("actor", "actor_id")
    unmarked = [c for c in EVENT_TYPES.values() if plan_for(c) is None]
    assert len(unmarked) == len(EVENT_TYPES) - 2


def _record(**extra: Any) -> dict[str, Any]:
    return {
        "type": "record",
        "name": "R",
        "namespace": "t",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "age", "type": "int"},
            {"name": "email", "type": "string", "pii": True},
        ],
        **extra,
    }


def test_a_marked_field_that_is_not_text_is_refused() -> None:
    definition = _record(**{"x-pii-subject": "id"})
    definition["fields"][1]["pii"] = True
    with pytest.raises(SchemaLoadError, match="age is marked pii but is not a string"):
        LocalSchema.from_json(definition)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "names no x-pii-subject"),
        ({"x-pii-subject": "nope"}, "not a field"),
        ({"x-pii-subject": "email"}, "the subject must stay readable"),
        ({"x-pii-subject": "id", "x-partition-key": "email"}, "record keys are not encrypted"),
    ],
)
def test_marks_without_a_readable_subject_are_refused(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(SchemaLoadError, match=message):
        LocalSchema.from_json(_record(**extra))


def test_the_bundled_catalog_loads_with_its_marks() -> None:
    assert default_catalog().get(UserRegistered.avro_name).pii_subject == "user_id"
