"""Parsing, canonical text, references and default validation."""

from __future__ import annotations

import json

import pytest

from streaming.registry.avro_schema import parse_schema
from streaming.registry.errors import InvalidSchema, SubjectNotFound
from streaming.registry.model import Reference, SchemaVersion

MONEY = {
    "type": "record",
    "name": "Money",
    "namespace": "com.ts",
    "fields": [{"name": "units", "type": "long"}, {"name": "currency", "type": "string"}],
}
ORDER = {
    "type": "record",
    "name": "Order",
    "namespace": "com.ts",
    "fields": [{"name": "price", "type": "com.ts.Money"}],
}


def test_equivalent_spellings_share_a_canonical_text() -> None:
    assert parse_schema('{"type": "string"}').canonical == parse_schema('"string"').canonical
    spaced = parse_schema(json.dumps(MONEY, indent=4)).canonical
    assert spaced == parse_schema(json.dumps(MONEY)).canonical
    assert spaced.startswith('{"type":"record","name":"Money"')
    assert '{"name":"units","type":"long"}' in spaced


def test_normalized_form_ignores_key_order() -> None:
    shuffled = {"fields": MONEY["fields"], "namespace": "com.ts", "name": "Money", "type": "record"}
    assert (
        parse_schema(json.dumps(shuffled)).normalized == parse_schema(json.dumps(MONEY)).normalized
    )


def test_references_resolve_recursively_and_stay_references() -> None:
    money = SchemaVersion("money", 1, 1, json.dumps(MONEY))
    order = SchemaVersion(
        "order", 1, 2, json.dumps(ORDER), references=(Reference("com.ts.Money", "money", 1),)
    )
    table = {("money", 1): money, ("order", 1): order}

    def resolve(ref: Reference) -> SchemaVersion:
        try:
            return table[(ref.subject, ref.version)]
        except KeyError:
            raise SubjectNotFound(ref.subject) from None

    wrapper = {
        "type": "record",
        "name": "Fill",
        "namespace": "com.ts",
        "fields": [
            {"name": "order", "type": "com.ts.Order"},
            {"name": "fee", "type": "com.ts.Money"},
        ],
    }
    parsed = parse_schema(json.dumps(wrapper), [Reference("com.ts.Order", "order", 1)], resolve)
    assert '"type":"com.ts.Order"' in parsed.canonical  # not inlined
    with pytest.raises(InvalidSchema, match="cannot be resolved"):
        parse_schema(json.dumps(wrapper), [Reference("com.ts.Order", "order", 9)], resolve)
    with pytest.raises(InvalidSchema):
        parse_schema(json.dumps(ORDER))  # Money unknown without the reference


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        '{"type":"foo"}',
        '{"type":"record","name":"X","fields":5}',
        '{"type":"record","name":"X","fields":[{"name":"a","type":"int","default":"x"}]}',
        '{"type":"record","name":"X","fields":[{"name":"a","type":["null","int"],"default":1}]}',
        '{"type":"enum","name":"E","symbols":["A","A"]}',
        '{"type":"record","name":"1bad","fields":[]}',
        "[" * 5000,
    ],
)
def test_invalid_schemas_raise_42201(text: str) -> None:
    with pytest.raises(InvalidSchema) as info:
        parse_schema(text)
    assert info.value.error_code == 42201


def test_only_avro_is_stored() -> None:
    with pytest.raises(InvalidSchema, match="schema type"):
        parse_schema('"string"', schema_type="PROTOBUF")
