"""Kafka record -> :class:`PreparedRecord`: decode, pick the event id, subject and PII paths.

An audit record that cannot be decoded is still chained (raw bytes kept, base64) so
nothing consumed is ever dropped from the audit trail.
"""

from __future__ import annotations

import base64
import re
import uuid
from datetime import datetime
from typing import Any

from connectors.audit_sink.writer import PreparedRecord
from streaming.core.headers import H_EVENT_ID
from streaming.errors import SerializationError
from streaming.serde.avro import AvroDeserializer, Decoded
from streaming.serde.catalog import SchemaCatalog, default_catalog
from streaming.serde.context import SerializationContext
from streaming.transport.base import Record

_NAMESPACE = uuid.UUID("6c1c8d5e-4c1b-4bd0-9a8e-61b1c9f0a3d2")
_FLOAT_TYPE = re.compile(r'"(?:float|double)"')


def _event_id(value: Any, record: Record) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    header = record.header(H_EVENT_ID)
    if header:
        try:
            return uuid.UUID(header.decode("ascii", "replace"))
        except ValueError:
            pass
    # No usable id: derive one from the record's coordinates (stable across redelivery).
    return uuid.uuid5(_NAMESPACE, f"{record.topic}/{record.partition}/{record.offset}")


class RecordPreparer:
    """Decodes audit records with the registry and the local catalog's PII markings."""

    def __init__(self, deserializer: AvroDeserializer, catalog: SchemaCatalog | None = None):
        self._deserializer = deserializer
        self._catalog = catalog or default_catalog()
        self._paths: dict[str | None, tuple[str, ...]] = {}
        self._float_free: dict[int, bool] = {}

    def _pii_paths(self, fullname: str | None) -> tuple[str, ...]:
        paths = self._paths.get(fullname)
        if paths is None:
            local = self._catalog.find(fullname) if fullname else None
            paths = self._paths[fullname] = tuple(local.pii_fields) if local is not None else ()
        return paths

    def _floats_absent(self, decoded: Decoded) -> bool:
        """Whether values of this writer schema can hold no float (cached per schema id).

        The deserializer reads into the catalog's schema of the same name when there is
        one (``use_local_schemas``), else as written: every schema text the value's types
        can come from (local schema and its references, the writer's own text and the
        local copies of the types it references) must name neither float nor double. A
        writer reference with no local copy is unknown text: floats assumed.
        """
        known = self._float_free.get(decoded.schema_id)
        if known is None:
            texts = [decoded.writer_schema.schema_str]
            name = decoded.record_name
            local = self._catalog.find(name) if name else None
            refs = [r.name for r in decoded.writer_schema.references]
            if local is not None:
                refs.append(local.fullname)
            known = True
            for ref in refs:
                found = self._catalog.find(ref)
                if found is None:
                    known = False
                    break
                texts.append(found.schema_str)
                texts.extend(dep.schema_str for dep in self._catalog.dependencies(ref))
            known = known and not any(_FLOAT_TYPE.search(t) for t in texts)
            self._float_free[decoded.schema_id] = known
        return known

    async def prepare(self, record: Record) -> PreparedRecord:
        base: dict[str, Any] = {"v": 1, "kafka_timestamp_ms": record.timestamp_ms}
        try:
            if record.value is None:
                raise SerializationError("tombstone (no value)")
            decoded = await self._deserializer.deserialize(
                record.value, SerializationContext.for_record(record)
            )
        except SerializationError as exc:
            if exc.retriable:
                raise  # the registry is unreachable: retry, never chain it as garbage
            event_id = _event_id(None, record)
            envelope = {
                **base,
                "undecodable": True,
                "error": str(exc)[:500],
                "raw": base64.b64encode(record.value or b"").decode("ascii"),
            }
            return PreparedRecord(
                record.offset, event_id, "UNDECODABLE", None, None, envelope, float_free=True
            )
        value = decoded.value if isinstance(decoded.value, dict) else {"value": decoded.value}
        metadata: dict[str, Any] = (
            value["metadata"] if isinstance(value.get("metadata"), dict) else {}
        )
        event_id = _event_id(metadata.get("event_id"), record)
        occurred = metadata.get("occurred_at")
        occurred_at = occurred if isinstance(occurred, datetime) else None
        actor: dict[str, Any] = value["actor"] if isinstance(value.get("actor"), dict) else {}
        paths = self._pii_paths(decoded.record_name)
        subject = actor.get("actor_id") or value.get("user_id")
        subject_id = str(subject) if subject else None
        has_pii = any(_get(value, p) is not None for p in paths)
        if has_pii and subject_id is None:
            subject_id = f"event:{event_id}"
        envelope = {
            **base,
            "schema": decoded.record_name,
            "schema_id": decoded.schema_id,
            "pii_subject": subject_id if has_pii else None,
            "event": value,
        }
        event_type = str(value.get("event_type") or (decoded.record_name or "unknown"))
        return PreparedRecord(
            record.offset,
            event_id,
            event_type,
            occurred_at,
            subject_id,
            envelope,
            paths if has_pii else (),
            float_free=self._floats_absent(decoded),
        )


def _get(value: dict[str, Any], path: str) -> Any:
    node: Any = value
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


__all__ = ["RecordPreparer"]
