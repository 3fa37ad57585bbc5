# ruff: noqa: S608  # table/schema names are validated SQL identifiers, values are bound
"""The audit sink's write path: consumed records onto their chains, exactly once.

One transaction per batch and partition: lock the chain head, skip redelivered offsets
and event ids already stored, COPY the new rows (each MAC'd onto its predecessor) and
move the head only if it is still where this sink left it; otherwise another sink owns
the partition now (:class:`ChainFencedError`). PII is encrypted under the subject's
data key (:mod:`.subject_keys`) before the bytes are hashed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from connectors.audit_sink.pii import SubjectKey
from connectors.audit_sink.subject_keys import SubjectKeys
from connectors.audit_sink.tables import AuditTables
from streaming.audit.canonical import canonical_json, column_time
from streaming.audit.chain import GENESIS_HASH, ChainHead, RowColumns, chain_id_for, chain_links
from streaming.audit.keys import MacKeyRing
from streaming.errors import DatabaseError, DuplicateKeyError

log = structlog.get_logger(__name__)

AUDIT_LOG_COLUMNS = (  # the COPY column order; the benchmark baseline uses it too
    "chain_id",
    "seq",
    "kafka_offset",
    "event_id",
    "event_type",
    "occurred_at",
    "subject_id",
    "key_id",
    "prev_hash",
    "hash",
    "payload",
    "recorded_at",
)


class ChainFencedError(DatabaseError):
    """The chain head moved under us: another sink instance owns this partition now."""

    def __init__(self, chain_id: str, expected: int, actual: int) -> None:
        self.chain_id = chain_id
        self.expected_offset = expected
        self.actual_offset = actual
        super().__init__(
            f"chain {chain_id}: head is at offset {actual}, expected {expected}; "
            "another sink wrote this partition (rebalance) - re-seeking"
        )


@dataclass(slots=True)
class PreparedRecord:
    """One consumed record ready to chain: its envelope and where its PII lives.

    :meth:`ChainWriter.seal` fills ``payload`` (the bytes to store) ahead of the batch
    transaction; ``sealed_with`` is the wrapped data key its PII was encrypted under,
    which the transaction checks is still the subject's stored key. Not frozen: frozen
    dataclasses cost several times more to build, and the sink builds one per row.
    """

    offset: int
    event_id: uuid.UUID
    event_type: str
    occurred_at: datetime | None
    subject_id: str | None
    envelope: dict[str, Any]
    pii_paths: tuple[str, ...] = ()
    payload: bytes | None = None
    sealed_with: bytes | None = None
    float_free: bool = False


@dataclass(frozen=True, slots=True)
class BatchResult:
    chain_id: str
    written: int
    duplicates: int
    redelivered: int
    head: ChainHead


class ChainWriter:
    """Appends consumed records to their chains, one transaction per batch, exactly once."""

    def __init__(self, tables: AuditTables, keys: SubjectKeys) -> None:
        self.tables = tables
        self.keys = keys

    async def _lock_head(
        self, conn: Any, topic: str, partition: int
    ) -> tuple[ChainHead, datetime | None]:
        """The chain head, locked, and the ``recorded_at`` of its last row."""
        chain_id = chain_id_for(topic, partition)
        query = (
            f"SELECT seq, hash, kafka_offset, recorded_at FROM {self.tables.name('chain_head')} "
            "WHERE chain_id = $1 FOR UPDATE"
        )
        row = await conn.fetchrow(query, chain_id)
        if row is None:
            await conn.execute(
                f"INSERT INTO {self.tables.name('chain_head')} "
                "(chain_id, topic, kafka_partition, seq, kafka_offset, hash) "
                "VALUES ($1, $2, $3, 0, -1, $4) ON CONFLICT (chain_id) DO NOTHING",
                chain_id,
                topic,
                partition,
                GENESIS_HASH,
            )
            row = await conn.fetchrow(query, chain_id)
        head = ChainHead(chain_id, row["seq"], bytes(row["hash"]), row["kafka_offset"])
        return head, row["recorded_at"]

    async def append(
        self,
        topic: str,
        partition: int,
        records: Sequence[PreparedRecord],
        *,
        expected_offset: int | None,
        ring: MacKeyRing,
    ) -> BatchResult:
        """Chain ``records`` onto (topic, partition) in one transaction, exactly once.

        Locks the head row, skips redelivered offsets (at or below the head), skips
        event ids already stored, COPYs the rows and moves the head only if it is still
        where this sink believed (``expected_offset``); else :class:`ChainFencedError`.
        """
        for attempt in range(3):
            try:
                return await self._append_once(
                    topic, partition, records, expected_offset=expected_offset, ring=ring
                )
            except DuplicateKeyError:
                # Two chains racing on one event id: the retry sees it as a duplicate.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _append_once(
        self,
        topic: str,
        partition: int,
        records: Sequence[PreparedRecord],
        *,
        expected_offset: int | None,
        ring: MacKeyRing,
    ) -> BatchResult:
        async with self.tables.transaction() as conn:
            head, last_recorded = await self._lock_head(conn, topic, partition)
            if expected_offset is not None and head.kafka_offset != expected_offset:
                raise ChainFencedError(head.chain_id, expected_offset, head.kafka_offset)
            fresh = [r for r in records if r.offset > head.kafka_offset]
            redelivered = len(records) - len(fresh)
            if not fresh:
                return BatchResult(head.chain_id, 0, 0, redelivered, head)
            stored = await conn.fetch(
                f"SELECT event_id FROM {self.tables.name('audit_log')} WHERE event_id = ANY($1::uuid[])",
                [r.event_id for r in fresh],
            )
            seen = {row["event_id"] for row in stored}
            unique: list[PreparedRecord] = []
            for r in fresh:
                if r.event_id not in seen:
                    seen.add(r.event_id)
                    unique.append(r)
            duplicates = len(fresh) - len(unique)
            if duplicates:
                log.warning("duplicate audit event ids skipped", chain=head.chain_id, n=duplicates)
            payloads = await self._payloads(conn, unique)
            # Never earlier than the chain's last row, whatever this host's clock says: a
            # time window is then a contiguous seq range, which export bundles rely on.
            recorded_at = datetime.now(UTC)
            if last_recorded is not None and last_recorded > recorded_at:
                recorded_at = last_recorded
            recorded = column_time(recorded_at)
            assert recorded is not None
            columns = [
                RowColumns(
                    str(r.event_id),
                    r.event_type,
                    column_time(r.occurred_at),
                    r.subject_id,
                    recorded,
                )
                for r in unique
            ]
            links = chain_links(
                ring,
                head,
                [(r.offset, p) for r, p in zip(unique, payloads, strict=True)],
                columns,
            )
            if links:
                chain, kid = head.chain_id, ring.active_key_id
                await conn.copy_records_to_table(
                    "audit_log",
                    schema_name=self.tables.schema,
                    columns=AUDIT_LOG_COLUMNS,
                    records=[
                        (
                            chain,
                            seq,
                            rec.offset,
                            rec.event_id,
                            rec.event_type,
                            rec.occurred_at,
                            rec.subject_id,
                            kid,
                            prev,
                            digest,
                            payload,
                            recorded_at,
                        )
                        for (seq, prev, digest), rec, payload in zip(
                            links, unique, payloads, strict=True
                        )
                    ],
                )
            new_head = ChainHead(
                head.chain_id,
                links[-1][0] if links else head.seq,
                links[-1][2] if links else head.hash,
                fresh[-1].offset,
            )
            status = await conn.execute(
                f"UPDATE {self.tables.name('chain_head')} SET seq = $2, hash = $3, kafka_offset = $4, "
                "duplicates = duplicates + $5, updated_at = now(), "
                "recorded_at = coalesce($7, recorded_at) "
                "WHERE chain_id = $1 AND kafka_offset = $6",
                head.chain_id,
                new_head.seq,
                new_head.hash,
                new_head.kafka_offset,
                duplicates,
                head.kafka_offset,
                recorded_at if links else None,
            )
            if status != "UPDATE 1":
                raise ChainFencedError(head.chain_id, head.kafka_offset, -2)
        return BatchResult(head.chain_id, len(links), duplicates, redelivered, new_head)

    def seal(self, records: Iterable[PreparedRecord]) -> None:
        """Compute each record's stored bytes now, outside the batch transaction.

        Records whose subject key is not cached yet are left for the transaction, which
        also re-checks that every cached key used here is still the subject's stored one.
        """
        pii, cache = self.keys.pii, self.keys.cache
        for r in records:
            if r.payload is not None:
                continue
            if pii is None or not r.pii_paths or not r.subject_id:
                r.payload = canonical_json(r.envelope, floats=not r.float_free)
                continue
            entry = cache.get(r.subject_id)
            if entry is not None:
                r.payload = self._protected(r, entry)
                r.sealed_with = entry.wrapped

    def _protected(self, r: PreparedRecord, key: SubjectKey) -> bytes:
        assert self.keys.pii is not None and r.subject_id is not None
        envelope = dict(r.envelope)
        envelope["event"] = self.keys.pii.protect(
            envelope["event"], r.pii_paths, r.subject_id, key.aes
        )
        return canonical_json(envelope, floats=not r.float_free)

    async def _payloads(self, conn: Any, records: Sequence[PreparedRecord]) -> list[bytes]:
        """Canonical bytes of each envelope, PII encrypted under the subject's data key.

        Sealed payloads are reused when their data key is still the stored one; the rest
        (a new subject, a key shredded or re-wrapped since) are computed here.
        """
        if self.keys.pii is None:
            return [
                r.payload
                if r.payload is not None
                else canonical_json(r.envelope, floats=not r.float_free)
                for r in records
            ]
        subjects = {r.subject_id for r in records if r.subject_id and r.pii_paths}
        keys = await self.keys.resolve(conn, subjects) if subjects else {}
        out = []
        for r in records:
            if not r.pii_paths or not r.subject_id:
                out.append(
                    r.payload
                    if r.payload is not None
                    else canonical_json(r.envelope, floats=not r.float_free)
                )
                continue
            key = keys[r.subject_id]
            if r.payload is not None and r.sealed_with == key.wrapped:
                out.append(r.payload)
            else:
                out.append(self._protected(r, key))
        return out


__all__ = ["AUDIT_LOG_COLUMNS", "BatchResult", "ChainFencedError", "ChainWriter", "PreparedRecord"]
