# ruff: noqa: S608  # table names are validated SQL identifiers, values are bound
"""Read one subject's audit rows in clear: both encryption layers undone.

A row's personal data is encrypted twice: by the producer (per-subject key in the
``_streaming.subject-keys`` topic, :mod:`streaming.privacy`) and again by the sink (per-
subject key in the ``subject_key`` table, :mod:`.pii`). Revealing needs both KEKs;
either key shredded makes the value read ``[shredded]``. The rows are not changed, so the
chain's MAC (over the stored ciphertext) is untouched by reading or shredding.
"""

from __future__ import annotations

import json
from typing import Any

from connectors.audit_sink.store import AuditStore
from streaming.privacy.keylog import SubjectKeyLog
from streaming.privacy.reveal import reveal_mapping
from streaming.serde.catalog import SchemaCatalog, default_catalog


async def reveal_subject(
    store: AuditStore,
    subject: str,
    keys: SubjectKeyLog,
    *,
    catalog: SchemaCatalog | None = None,
) -> list[dict[str, Any]]:
    """Every row recorded for ``subject``, its event decrypted, in chain order."""
    catalog = catalog or default_catalog()
    pii = store.subject_keys.pii
    tables = store.tables
    async with tables.connection() as conn:
        rows = await conn.fetch(
            f"SELECT chain_id, seq, event_id, payload FROM {tables.name('audit_log')} "
            "WHERE subject_id = $1 ORDER BY chain_id, seq",
            subject,
        )
    wrapped = await store.subject_keys.wrapped(subject)
    sink_key = pii.unwrap(subject, wrapped) if pii is not None and wrapped is not None else None
    out = []
    for row in rows:
        envelope = json.loads(bytes(row["payload"]))
        event = envelope.get("event")
        local = catalog.find(envelope.get("schema") or "")
        if isinstance(event, dict) and local is not None:
            if pii is not None and envelope.get("pii_subject"):
                event = pii.reveal(event, local.pii_fields, envelope["pii_subject"], sink_key)
            event = await reveal_mapping(event, local, keys)
        out.append(
            {
                "chain": row["chain_id"],
                "seq": row["seq"],
                "event_id": str(row["event_id"]),
                "event": event,
            }
        )
    return out


__all__ = ["reveal_subject"]
