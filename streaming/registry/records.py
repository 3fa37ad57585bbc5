"""The ``_schemas`` topic record layout, byte-compatible with Confluent Schema Registry.

Keys are JSON objects whose property order is fixed (compaction compares key bytes):

    {"keytype":"SCHEMA","subject":S,"version":V,"magic":1}   value: the subject version
    {"keytype":"CONFIG","subject":S|null,"magic":0}         value: {"compatibilityLevel":L}
    {"keytype":"MODE","subject":S|null,"magic":0}           value: {"mode":M}
    {"keytype":"DELETE_SUBJECT","subject":S,"magic":0}      value: {"subject":S,"version":V}
    {"keytype":"NOOP","magic":0}                            value: null (writer catch-up marker)
    {"keytype":"NOOP","magic":1}                            value: {"maxId":N} (ours, see below)

A ``null`` value is a tombstone: the key's state is removed (hard delete, config reset).
On hard deletes we also write the highest id ever assigned under the second NOOP key, so
ids are never reused once compaction has removed the tombstoned schema records.
Confluent's and Karapace's readers skip NOOP records, so both keys are harmless to them.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from streaming.errors import SerializationError
from streaming.registry.errors import RegistryError
from streaming.registry.model import AVRO, CompatibilityLevel, Mode, Reference, SchemaVersion


class KeyType(enum.StrEnum):
    SCHEMA = "SCHEMA"
    CONFIG = "CONFIG"
    MODE = "MODE"
    DELETE_SUBJECT = "DELETE_SUBJECT"
    NOOP = "NOOP"


@dataclass(frozen=True, slots=True)
class SchemaKey:
    subject: str
    version: int


@dataclass(frozen=True, slots=True)
class ConfigKey:
    subject: str | None


@dataclass(frozen=True, slots=True)
class ModeKey:
    subject: str | None


@dataclass(frozen=True, slots=True)
class DeleteSubjectKey:
    subject: str


@dataclass(frozen=True, slots=True)
class NoopKey:
    """``high_water=False``: the writer's catch-up marker (value null, as Confluent writes).

    ``high_water=True`` (``"magic":1``) holds the id high-water mark under its own key, so
    later markers never compact it away.
    """

    high_water: bool = False


StoreKey = SchemaKey | ConfigKey | ModeKey | DeleteSubjectKey | NoopKey


@dataclass(frozen=True, slots=True)
class DeleteSubject:
    subject: str
    version: int


@dataclass(frozen=True, slots=True)
class IdHighWater:
    max_id: int


StoreValue = SchemaVersion | CompatibilityLevel | Mode | DeleteSubject | IdHighWater


@dataclass(frozen=True, slots=True)
class StoreRecord:
    """One decoded ``_schemas`` record; ``value=None`` is a tombstone."""

    key: StoreKey
    value: StoreValue | None


class RecordFormatError(SerializationError, ValueError):
    """A ``_schemas`` record we cannot understand (it is skipped and logged)."""


def _dump(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def encode_key(key: StoreKey) -> bytes:
    if isinstance(key, SchemaKey):
        return _dump(
            {"keytype": "SCHEMA", "subject": key.subject, "version": key.version, "magic": 1}
        )
    if isinstance(key, ConfigKey):
        return _dump({"keytype": "CONFIG", "subject": key.subject, "magic": 0})
    if isinstance(key, ModeKey):
        return _dump({"keytype": "MODE", "subject": key.subject, "magic": 0})
    if isinstance(key, DeleteSubjectKey):
        return _dump({"keytype": "DELETE_SUBJECT", "subject": key.subject, "magic": 0})
    return _dump({"keytype": "NOOP", "magic": 1 if key.high_water else 0})


def encode_value(value: StoreValue | None) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, SchemaVersion):
        out: dict[str, Any] = {
            "subject": value.subject,
            "version": value.version,
            "id": value.schema_id,
        }
        if value.schema_type != AVRO:
            out["schemaType"] = value.schema_type
        if value.references:
            out["references"] = [r.to_json() for r in value.references]
        out["schema"] = value.schema
        out["deleted"] = value.deleted
        return _dump(out)
    if isinstance(value, CompatibilityLevel):
        return _dump({"compatibilityLevel": value.value})
    if isinstance(value, Mode):
        return _dump({"mode": value.value})
    if isinstance(value, DeleteSubject):
        return _dump({"subject": value.subject, "version": value.version})
    return _dump({"maxId": value.max_id})


def encode(record: StoreRecord) -> tuple[bytes, bytes | None]:
    return encode_key(record.key), encode_value(record.value)


def _obj(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordFormatError(f"{what} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RecordFormatError(f"{what} is not a JSON object")
    return data


def decode_key(raw: bytes) -> StoreKey:
    data = _obj(raw, "key")
    try:
        kind = KeyType(str(data.get("keytype")))
    except ValueError as exc:
        raise RecordFormatError(f"unknown keytype {data.get('keytype')!r}") from exc
    subject = data.get("subject")
    if subject is not None and not isinstance(subject, str):
        raise RecordFormatError("key subject is not a string")
    if kind is KeyType.SCHEMA:
        version = data.get("version")
        if not isinstance(subject, str) or not isinstance(version, int):
            raise RecordFormatError("SCHEMA key needs a subject and an integer version")
        return SchemaKey(subject, version)
    if kind is KeyType.CONFIG:
        return ConfigKey(subject)
    if kind is KeyType.MODE:
        return ModeKey(subject)
    if kind is KeyType.DELETE_SUBJECT:
        if subject is None:
            raise RecordFormatError("DELETE_SUBJECT key needs a subject")
        return DeleteSubjectKey(subject)
    return NoopKey(high_water=data.get("magic") == 1)


def decode_value(key: StoreKey, raw: bytes | None) -> StoreValue | None:
    if raw is None:
        return None
    if isinstance(key, NoopKey):
        if not raw:
            return None
        data = _obj(raw, "NOOP value")
        max_id = data.get("maxId")
        return IdHighWater(max_id) if isinstance(max_id, int) else None
    data = _obj(raw, f"{type(key).__name__} value")
    try:
        if isinstance(key, SchemaKey):
            return SchemaVersion(
                subject=str(data.get("subject", key.subject)),
                version=int(data.get("version", key.version)),
                schema_id=int(data["id"]),
                schema=str(data["schema"]),
                references=tuple(Reference.from_json(r) for r in data.get("references") or ()),
                schema_type=str(data.get("schemaType") or AVRO),
                deleted=bool(data.get("deleted", False)),
            )
        if isinstance(key, ConfigKey):
            return CompatibilityLevel.parse(data.get("compatibilityLevel"))
        if isinstance(key, ModeKey):
            return Mode.parse(data.get("mode"))
        return DeleteSubject(str(data.get("subject", key.subject)), int(data["version"]))
    except (KeyError, TypeError, ValueError, RegistryError) as exc:
        raise RecordFormatError(f"bad {type(key).__name__} value: {exc}") from exc


def decode(key: bytes | None, value: bytes | None) -> StoreRecord:
    if key is None:
        raise RecordFormatError("record without a key")
    parsed = decode_key(key)
    return StoreRecord(parsed, decode_value(parsed, value))


__all__ = [
    "ConfigKey",
    "DeleteSubject",
    "DeleteSubjectKey",
    "IdHighWater",
    "KeyType",
    "ModeKey",
    "NoopKey",
    "RecordFormatError",
    "SchemaKey",
    "StoreKey",
    "StoreRecord",
    "StoreValue",
    "decode",
    "decode_key",
    "decode_value",
    "encode",
    "encode_key",
    "encode_value",
]
