import json
import shutil
from pathlib import Path

import pytest

from streaming.serde.catalog import LocalSchema, SchemaCatalog, default_catalog, schema_directories
from streaming.serde.errors import SchemaLoadError
from streaming.serde.schema import external_references, named_types

EXPECTED = {
    "com.tradesense.common.EventMetadata",
    "com.tradesense.common.Money",
    "com.tradesense.common.OrderSide",
    "com.tradesense.events.OrderPlaced",
    "com.tradesense.events.OrderCancelled",
    "com.tradesense.events.OrderFilled",
    "com.tradesense.events.PositionChanged",
    "com.tradesense.events.UserRegistered",
    "com.tradesense.audit.AuditEvent",
}


def test_bundled_catalog_has_every_contract_and_each_parses() -> None:
    catalog = default_catalog()
    assert {s.fullname for s in catalog} == EXPECTED
    for schema in catalog:
        assert catalog.parsed(schema.fullname)["name"] == schema.fullname


def test_shared_types_are_used_by_reference_not_copied() -> None:
    placed = default_catalog().get("com.tradesense.events.OrderPlaced")
    assert placed.references == (
        "com.tradesense.common.EventMetadata",
        "com.tradesense.common.Money",
        "com.tradesense.common.OrderSide",
    )
    assert '"name":"Money"' not in placed.schema_str


def test_every_event_names_a_partition_key_field() -> None:
    for schema in default_catalog():
        if schema.fullname.startswith(("com.tradesense.events.", "com.tradesense.audit.")):
            assert schema.partition_key is not None, schema.fullname


def test_pii_fields_are_listed_with_nested_paths() -> None:
    audit = default_catalog().get("com.tradesense.audit.AuditEvent")
    assert audit.pii_fields == ("actor.username", "ip_address", "user_agent")


def test_dependencies_come_before_their_users() -> None:
    deps = default_catalog().dependencies("com.tradesense.events.OrderFilled")
    assert [d.fullname for d in deps] == [
        "com.tradesense.common.EventMetadata",
        "com.tradesense.common.Money",
        "com.tradesense.common.OrderSide",
    ]


def test_named_types_resolve_relative_names_against_the_enclosing_namespace() -> None:
    schema = {
        "type": "record",
        "name": "A",
        "namespace": "x.y",
        "fields": [
            {"name": "b", "type": {"type": "enum", "name": "B", "symbols": ["Q"]}},
            {"name": "c", "type": ["null", "B", "other.C"]},
            {"name": "d", "type": {"type": "array", "items": "D"}},
            {"name": "e", "type": {"type": "map", "values": "long"}},
        ],
    }
    defined, referenced = named_types(schema)
    assert defined == {"x.y.A", "x.y.B"}
    assert referenced == {"x.y.B", "other.C", "x.y.D"}
    assert external_references(schema) == {"other.C", "x.y.D"}


def test_catalog_loads_from_a_copy_like_an_installed_wheel(tmp_path: Path) -> None:
    shutil.copytree(schema_directories()[0], tmp_path / "_schemas")
    catalog = SchemaCatalog.from_directories(tmp_path / "_schemas")
    assert {s.fullname for s in catalog} == EXPECTED


def test_a_missing_reference_is_reported_with_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.avsc").write_text(
        json.dumps({"type": "record", "name": "A", "fields": [{"name": "m", "type": "nope.M"}]})
    )
    with pytest.raises(SchemaLoadError, match=r"a\.avsc: uses nope\.M"):
        SchemaCatalog.from_directories(tmp_path)


def test_a_partition_key_must_name_a_field() -> None:
    with pytest.raises(SchemaLoadError, match="not a field"):
        LocalSchema.from_json(
            {"type": "record", "name": "A", "x-partition-key": "zz", "fields": []}
        )


def test_unknown_fullname_lists_the_known_ones() -> None:
    with pytest.raises(SchemaLoadError, match=r"known: com\.tradesense\.audit\.AuditEvent"):
        default_catalog().get("com.example.Nope")


def test_replace_overrides_a_same_named_entry() -> None:
    v2 = LocalSchema.from_json(
        {
            "type": "record",
            "name": "Money",
            "namespace": "com.tradesense.common",
            "fields": [{"name": "amount", "type": "string"}],
        }
    )
    catalog = default_catalog().replace(v2)
    assert catalog.get("com.tradesense.common.Money") is v2
    assert default_catalog().get("com.tradesense.common.Money") is not v2
