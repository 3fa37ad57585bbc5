"""The ``_schemas`` record layout and the state fold over it."""

from __future__ import annotations

import json

import pytest

from streaming.registry.errors import SchemaNotFound, SubjectNotFound, VersionNotFound
from streaming.registry.model import CompatibilityLevel, Mode, Reference, SchemaVersion
from streaming.registry.records import (
    ConfigKey,
    DeleteSubject,
    DeleteSubjectKey,
    IdHighWater,
    ModeKey,
    NoopKey,
    RecordFormatError,
    SchemaKey,
    StoreRecord,
    decode,
    encode,
    encode_key,
)
from streaming.registry.state import RegistryState


def sv(
    subject: str, version: int, schema_id: int, schema: str = '"string"', **kw: object
) -> SchemaVersion:
    return SchemaVersion(subject, version, schema_id, schema, **kw)  # type: ignore[arg-type]


def test_keys_use_confluent_property_order() -> None:
    assert (
        encode_key(SchemaKey("s", 3)) == b'{"keytype":"SCHEMA","subject":"s","version":3,"magic":1}'
    )
    assert encode_key(ConfigKey(None)) == b'{"keytype":"CONFIG","subject":null,"magic":0}'
    assert encode_key(ConfigKey("s")) == b'{"keytype":"CONFIG","subject":"s","magic":0}'
    assert encode_key(ModeKey(None)) == b'{"keytype":"MODE","subject":null,"magic":0}'
    assert (
        encode_key(DeleteSubjectKey("s")) == b'{"keytype":"DELETE_SUBJECT","subject":"s","magic":0}'
    )
    assert encode_key(NoopKey()) == b'{"keytype":"NOOP","magic":0}'
    assert encode_key(NoopKey(high_water=True)) == b'{"keytype":"NOOP","magic":1}'


@pytest.mark.parametrize(
    "record",
    [
        StoreRecord(SchemaKey("s", 1), sv("s", 1, 7, references=(Reference("n.T", "t", 2),))),
        StoreRecord(SchemaKey("s", 1), sv("s", 1, 7, deleted=True)),
        StoreRecord(SchemaKey("s", 1), None),
        StoreRecord(ConfigKey("s"), CompatibilityLevel.FULL),
        StoreRecord(ConfigKey(None), None),
        StoreRecord(ModeKey(None), Mode.IMPORT),
        StoreRecord(DeleteSubjectKey("s"), DeleteSubject("s", 4)),
        StoreRecord(NoopKey(high_water=True), IdHighWater(12)),
        StoreRecord(NoopKey(), None),
    ],
)
def test_records_round_trip(record: StoreRecord) -> None:
    key, value = encode(record)
    assert decode(key, value) == record


def test_schema_value_matches_confluent_fields() -> None:
    _, value = encode(StoreRecord(SchemaKey("s", 2), sv("s", 2, 9)))
    assert value is not None
    assert json.loads(value) == {
        "subject": "s",
        "version": 2,
        "id": 9,
        "schema": '"string"',
        "deleted": False,
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (b"not json", b"{}"),
        (b'{"keytype":"WHAT","magic":0}', b"{}"),
        (b'{"keytype":"SCHEMA","subject":"s","magic":1}', b"{}"),
        (b'{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}', b'{"schema":"x"}'),
        (b'{"keytype":"CONFIG","subject":null,"magic":0}', b'{"compatibilityLevel":"NOPE"}'),
    ],
)
def test_unreadable_records_are_skipped_not_fatal(key: bytes, value: bytes) -> None:
    with pytest.raises(RecordFormatError):
        decode(key, value)
    state = RegistryState()
    state.apply_raw(key, value)
    assert state.skipped == 1
    assert state.is_empty()


def apply(state: RegistryState, *records: StoreRecord) -> None:
    for record in records:
        state.apply_raw(*encode(record))


def test_state_tracks_versions_ids_and_soft_deletes() -> None:
    state = RegistryState()
    apply(
        state,
        StoreRecord(SchemaKey("a", 1), sv("a", 1, 1)),
        StoreRecord(SchemaKey("a", 2), sv("a", 2, 2, '"int"')),
        StoreRecord(SchemaKey("b", 1), sv("b", 1, 1)),
    )
    assert state.subjects() == ["a", "b"]
    assert [v.version for v in state.versions("a")] == [1, 2]
    assert state.version("a", None).schema_id == 2
    assert [(v.subject, v.version) for v in state.usages(1)] == [("a", 1), ("b", 1)]
    assert state.next_id() == 3
    apply(state, StoreRecord(DeleteSubjectKey("a"), DeleteSubject("a", 2)))
    assert state.subjects() == ["b"]
    assert state.subjects(deleted=True) == ["a", "b"]
    with pytest.raises(SubjectNotFound):
        state.versions("a")
    assert state.body(2).schema == '"int"'  # soft-deleted ids still resolve
    assert state.next_version("a") == 3


def test_tombstones_remove_versions_but_never_lower_the_id_high_water() -> None:
    state = RegistryState()
    apply(
        state,
        StoreRecord(SchemaKey("a", 1), sv("a", 1, 5)),
        StoreRecord(NoopKey(high_water=True), IdHighWater(5)),
        StoreRecord(SchemaKey("a", 1), None),
        StoreRecord(NoopKey(), None),  # a later writer marker must not hide the high water
    )
    with pytest.raises(SchemaNotFound):
        state.body(5)
    assert state.next_id() == 6
    # after compaction only the NOOP survives, and still protects the id
    compacted = RegistryState()
    apply(
        compacted,
        StoreRecord(NoopKey(high_water=True), IdHighWater(5)),
        StoreRecord(NoopKey(), None),
    )
    assert compacted.next_id() == 6


def test_config_and_mode_records_and_tombstones() -> None:
    state = RegistryState()
    apply(state, StoreRecord(ConfigKey(None), CompatibilityLevel.FULL))
    apply(state, StoreRecord(ConfigKey("s"), CompatibilityLevel.NONE))
    apply(state, StoreRecord(ModeKey("s"), Mode.READONLY))
    assert state.effective_config("s") is CompatibilityLevel.NONE
    assert state.effective_config("other") is CompatibilityLevel.FULL
    assert state.effective_mode("s") is Mode.READONLY
    apply(state, StoreRecord(ConfigKey("s"), None), StoreRecord(ModeKey("s"), None))
    assert state.effective_config("s") is CompatibilityLevel.FULL
    assert state.effective_mode("s") is Mode.READWRITE


def test_version_lookup_errors() -> None:
    state = RegistryState()
    apply(state, StoreRecord(SchemaKey("a", 1), sv("a", 1, 1)))
    with pytest.raises(VersionNotFound):
        state.version("a", 9)
    with pytest.raises(SubjectNotFound):
        state.version("zzz", None)
