# ruff: noqa: S608  # table/schema names are validated SQL identifiers, values are bound
"""Subject data keys: the per-subject keys that encrypt PII in stored rows.

Each subject's data key is stored wrapped under the KEK (``subject_key`` table);
deleting it is crypto-shredding: the subject's PII in every row becomes unreadable while
the chain still verifies. Unwrapped keys are cached (:class:`SubjectKeyCache`).
"""

from __future__ import annotations

from typing import Any

from connectors.audit_sink.pii import PiiCipher, SubjectKey, SubjectKeyCache
from connectors.audit_sink.tables import AuditTables


class SubjectKeys:
    """The ``subject_key`` table: create on first sight, read, shred, re-wrap."""

    def __init__(self, tables: AuditTables, pii: PiiCipher | None, cache: SubjectKeyCache) -> None:
        self.tables = tables
        self.pii = pii
        self.cache = cache

    async def resolve(self, conn: Any, subjects: set[str]) -> dict[str, SubjectKey]:
        """The stored data key of each subject (created on first sight), read in ``conn``'s
        transaction; unwrapped only when the cache does not hold that exact wrapped key."""
        assert self.pii is not None
        table = self.tables.name("subject_key")
        query = f"SELECT subject_id, wrapped_key FROM {table} WHERE subject_id = ANY($1::text[])"
        found = {
            r["subject_id"]: bytes(r["wrapped_key"]) for r in await conn.fetch(query, subjects)
        }
        missing = subjects - set(found)
        created: dict[str, tuple[bytes, bytes]] = {}
        if missing:
            new = [(s, *self.pii.new_subject_key(s)) for s in sorted(missing)]
            await conn.executemany(
                f"INSERT INTO {table} (subject_id, kek_id, wrapped_key) "
                "VALUES ($1, $2, $3) ON CONFLICT (subject_id) DO NOTHING",
                [(s, kid, wrapped) for s, _key, wrapped, kid in new],
            )
            created = {s: (wrapped, key) for s, key, wrapped, _kid in new}
            found.update(
                {r["subject_id"]: bytes(r["wrapped_key"]) for r in await conn.fetch(query, missing)}
            )
        out: dict[str, SubjectKey] = {}
        for subject, wrapped in found.items():
            entry = self.cache.get(subject)
            if entry is None or entry.wrapped != wrapped:
                mine = created.get(subject)
                data_key = (
                    mine[1]
                    if mine is not None and mine[0] == wrapped
                    else self.pii.unwrap(subject, wrapped)
                )
                entry = self.cache.put(subject, wrapped, data_key)
            out[subject] = entry
        return out

    async def wrapped(self, subject: str) -> bytes | None:
        """The subject's stored (wrapped) data key, ``None`` when it has none."""
        async with self.tables.connection() as conn:
            value = await conn.fetchval(
                f"SELECT wrapped_key FROM {self.tables.name('subject_key')} WHERE subject_id = $1",
                subject,
            )
        return bytes(value) if value is not None else None

    async def shred(self, subject: str) -> bool:
        """Delete the subject's data key: its PII in every row becomes unreadable."""
        self.cache.discard(subject)
        async with self.tables.connection() as conn:
            status = await conn.execute(
                f"DELETE FROM {self.tables.name('subject_key')} WHERE subject_id = $1", subject
            )
        return bool(status == "DELETE 1")

    async def rewrap(self) -> int:
        """Re-wrap every data key under the active KEK (rows are untouched)."""
        if self.pii is None:
            return 0
        changed = 0
        table = self.tables.name("subject_key")
        async with self.tables.connection() as conn, conn.transaction():
            rows = await conn.fetch(f"SELECT subject_id, wrapped_key FROM {table} FOR UPDATE")
            for r in rows:
                new = self.pii.rewrap(bytes(r["wrapped_key"]))
                if new is not None:
                    await conn.execute(
                        f"UPDATE {table} SET wrapped_key = $2, kek_id = $3 WHERE subject_id = $1",
                        r["subject_id"],
                        new,
                        self.pii.kek_id,
                    )
                    changed += 1
        return changed


__all__ = ["SubjectKeys"]
