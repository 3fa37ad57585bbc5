"""canonical_json's orjson path (``floats=False``) writes exactly the Python pass's bytes.

The chain hashes these bytes, so "equivalent" means byte for byte, or both refusing.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.bench_audit_sink import _event
from connectors.audit_sink.records import RecordPreparer
from streaming.audit.canonical import CanonicalizationError, canonical_json
from streaming.serde.avro import AvroDeserializer, AvroSerializer
from streaming.serde.catalog import LocalSchema
from streaming.serde.context import SerializationContext
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.transport.base import Record


class Side(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2**60  # beyond 2**53: a string in canonical JSON


_ANY_CHAR = st.characters(codec=None, categories=None)  # controls, surrogates, astral, all
_TEXT = st.text(alphabet=_ANY_CHAR, max_size=12) | st.sampled_from(
    ["", "é", "\u2028", "\x7f", "\x00\x1f", "\ud800", "\U0001f600", "\ue000", '"\\/']
)
_ZONES = st.sampled_from(
    [
        None,
        dt.UTC,
        dt.timezone(dt.timedelta(hours=5, minutes=30)),
        dt.timezone(-dt.timedelta(hours=8)),
    ]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()  # small, 2**53 +- 1, past 64 bits
    | st.sampled_from([2**53 - 1, 2**53, -(2**53) + 1, -(2**53), 2**63, -(2**64)])
    | _TEXT
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.binary(max_size=12)
    | st.uuids()
    | st.datetimes(timezones=_ZONES)
    | st.dates()
    | st.times()
    | st.sampled_from([Side.BUY, Side.SELL, Level.LOW, Level.HIGH])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(_TEXT, inner, max_size=5)
    ),
    max_leaves=25,
)


def _both(value: Any) -> tuple[Any, Any]:
    """(Python pass, orjson path): bytes, or the exception type each raised."""
    out: list[Any] = []
    for floats in (True, False):
        try:
            out.append(canonical_json(value, floats=floats))
        except CanonicalizationError:
            out.append(CanonicalizationError)
    return out[0], out[1]


@settings(max_examples=3000, deadline=None)
@given(_VALUES)
def test_the_orjson_path_writes_the_same_bytes_as_the_python_pass(value: Any) -> None:
    python, fast = _both(value)
    assert fast == python


@pytest.mark.parametrize(
    "value",
    [
        {"\ue000": 1, "\U0001f600": 2, "a": 3},  # UTF-16 order != code-point order
        {"k": "\ud800"},  # a lone surrogate (orjson refuses it)
        {"big": 2**53, "neg": -(2**53), "edge": 2**53 - 1},
        {"amount": decimal.Decimal("12.50000000"), "nan": decimal.Decimal("NaN")},
        {"at": dt.datetime(2026, 1, 2, 3, 4, 5, 678901), "d": dt.date(2026, 1, 2)},
        {"at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))},
        {"id": uuid.UUID("6c1c8d5e-4c1b-4bd0-9a8e-61b1c9f0a3d2"), "raw": b"\x00\xff"},
        {"nested": {"list": [1, "two", None, True, (3, 4)], "e": Side.SELL, "i": Level.HIGH}},
        {1: "a"},  # refused by both
        {"x": {1, 2}},  # a set: refused by both
    ],
)
def test_the_orjson_path_agrees_on_the_hard_cases(value: Any) -> None:
    python, fast = _both(value)
    assert fast == python


async def test_real_audit_envelopes_are_float_free_and_encode_identically() -> None:
    registry = InMemorySchemaRegistryClient()
    serializer = AvroSerializer(registry)
    preparer = RecordPreparer(AvroDeserializer(registry, use_local_schemas=True))
    for i in range(300):
        event = _event(i)
        event.details.update({"note": "naïve ☃ \U0001f600 \x01", "\ue000k": str(i)})
        data = await serializer.serialize(event, SerializationContext("audit.events"))
        value = data if isinstance(data, bytes) else data.data
        prepared = await preparer.prepare(Record("audit.events", 0, i, 0, None, value))
        assert prepared.float_free
        envelope = prepared.envelope
        assert canonical_json(envelope, floats=False) == canonical_json(envelope)


async def test_a_schema_with_a_double_keeps_the_python_pass() -> None:
    registry = InMemorySchemaRegistryClient()
    schema = LocalSchema.from_json(
        {
            "type": "record",
            "name": "Tick",
            "namespace": "test.floats",
            "fields": [{"name": "price", "type": "double"}, {"name": "n", "type": "long"}],
        }
    )
    serializer = AvroSerializer(registry, schema=schema)
    preparer = RecordPreparer(AvroDeserializer(registry, use_local_schemas=True))
    data = await serializer.serialize({"price": 1.0, "n": 2**60}, SerializationContext("ticks"))
    prepared = await preparer.prepare(Record("ticks", 0, 0, 0, None, data))

    assert not prepared.float_free
    # What the sink stores for it: the ECMAScript form of 1.0, the big long as a string.
    assert b'"event":{"n":"1152921504606846976","price":1}' in canonical_json(prepared.envelope)
