# ruff: noqa: S608  # table/schema names are validated SQL identifiers, values are bound
"""PostgreSQL side of the audit sink: one transaction per batch, checkpoints, reads.

Talks asyncpg directly (COPY, arrays) on connections borrowed from
:class:`streaming.db.Database`, so the pool, circuit breaker and error messages are the
shared ones. asyncpg errors are translated here into :mod:`streaming.errors` types.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from connectors.audit_sink.migrations import migration_sql
from connectors.audit_sink.pii import PiiCipher, SubjectKey, SubjectKeyCache
from streaming.audit_chain import (
    GENESIS_HASH,
    ChainHead,
    ChainRow,
    Checkpoint,
    CheckpointSigner,
    MacKeyRing,
    RowColumns,
    SignedCheckpoint,
    canonical_json,
    chain_id_for,
    chain_links,
    checkpoint_digest,
    column_time,
)
from streaming.db import Database, translate_db_error
from streaming.errors import DatabaseError, DatabaseUnavailableError

log = structlog.get_logger(__name__)

_ASYNCPG_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)
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
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_time(ms: int) -> datetime:
    """A checkpoint's signed ``created_at_ms`` as the ``created_at`` column stores it."""
    return _EPOCH + timedelta(milliseconds=ms)


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

    :meth:`AuditStore.seal` fills ``payload`` (the bytes to store) ahead of the batch
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


@dataclass(frozen=True, slots=True)
class BatchResult:
    chain_id: str
    written: int
    duplicates: int
    redelivered: int
    head: ChainHead


class AuditStore:
    """The audit tables of one schema (``AUDIT_DB_SCHEMA``)."""

    def __init__(
        self,
        database: Database,
        schema: str = "audit",
        *,
        writer_role: str | None = None,
        pii: PiiCipher | None = None,
        key_cache: SubjectKeyCache | None = None,
    ) -> None:
        self.database = database
        self.schema = schema
        self.writer_role = writer_role
        self.pii = pii
        self.key_cache = key_cache if key_cache is not None else SubjectKeyCache()

    # -- connections -------------------------------------------------------------------

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A raw asyncpg connection from the shared pool; errors come out translated."""
        async with self.database.connect() as conn:
            fairy = await conn.get_raw_connection()
            raw = fairy.driver_connection
            try:
                yield raw
            except _ASYNCPG_ERRORS as exc:
                error = translate_db_error(exc, self.database.settings)
                if isinstance(error, DatabaseUnavailableError):
                    self.database.breaker.record_failure()
                    fairy.invalidate()
                raise error from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        async with self.connection() as conn, conn.transaction():
            if self.writer_role:
                await conn.execute(f"SET LOCAL ROLE {self.writer_role}")
            yield conn

    def _t(self, name: str) -> str:
        return f"{self.schema}.{name}"

    async def migrate(self) -> None:
        """Create or upgrade the schema (safe to run any number of times)."""
        async with self.connection() as conn, conn.transaction():
            await conn.execute(migration_sql(self.schema, self.writer_role))
        log.info("audit schema migrated", schema=self.schema)

    # -- chain heads ---------------------------------------------------------------------

    async def heads(self, chain_ids: Iterable[str] | None = None) -> dict[str, ChainHead]:
        async with self.connection() as conn:
            if chain_ids is None:
                rows = await conn.fetch(
                    f"SELECT chain_id, seq, hash, kafka_offset FROM {self._t('chain_head')}"
                )
            else:
                rows = await conn.fetch(
                    f"SELECT chain_id, seq, hash, kafka_offset FROM {self._t('chain_head')} "
                    "WHERE chain_id = ANY($1::text[])",
                    list(chain_ids),
                )
        return {
            r["chain_id"]: ChainHead(r["chain_id"], r["seq"], bytes(r["hash"]), r["kafka_offset"])
            for r in rows
        }

    async def duplicates(self) -> int:
        async with self.connection() as conn:
            value = await conn.fetchval(
                f"SELECT coalesce(sum(duplicates), 0) FROM {self._t('chain_head')}"
            )
        return int(value)

    async def _lock_head(
        self, conn: Any, topic: str, partition: int
    ) -> tuple[ChainHead, datetime | None]:
        """The chain head, locked, and the ``recorded_at`` of its last row."""
        chain_id = chain_id_for(topic, partition)
        query = (
            f"SELECT seq, hash, kafka_offset, recorded_at FROM {self._t('chain_head')} "
            "WHERE chain_id = $1 FOR UPDATE"
        )
        row = await conn.fetchrow(query, chain_id)
        if row is None:
            await conn.execute(
                f"INSERT INTO {self._t('chain_head')} "
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

    # -- the batch transaction -------------------------------------------------------------

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
            except DatabaseError as exc:
                # Two chains racing on one event id: the retry sees it as a duplicate.
                cause = exc.__cause__
                if not isinstance(cause, asyncpg.UniqueViolationError) or attempt == 2:
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
        async with self.transaction() as conn:
            head, last_recorded = await self._lock_head(conn, topic, partition)
            if expected_offset is not None and head.kafka_offset != expected_offset:
                raise ChainFencedError(head.chain_id, expected_offset, head.kafka_offset)
            fresh = [r for r in records if r.offset > head.kafka_offset]
            redelivered = len(records) - len(fresh)
            if not fresh:
                return BatchResult(head.chain_id, 0, 0, redelivered, head)
            stored = await conn.fetch(
                f"SELECT event_id FROM {self._t('audit_log')} WHERE event_id = ANY($1::uuid[])",
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
                    schema_name=self.schema,
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
                f"UPDATE {self._t('chain_head')} SET seq = $2, hash = $3, kafka_offset = $4, "
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
        pii, cache = self.pii, self.key_cache
        for r in records:
            if r.payload is not None:
                continue
            if pii is None or not r.pii_paths or not r.subject_id:
                r.payload = canonical_json(r.envelope)
                continue
            entry = cache.get(r.subject_id)
            if entry is not None:
                r.payload = self._protected(r, entry)
                r.sealed_with = entry.wrapped

    def _protected(self, r: PreparedRecord, key: SubjectKey) -> bytes:
        assert self.pii is not None and r.subject_id is not None
        envelope = dict(r.envelope)
        envelope["event"] = self.pii.protect(envelope["event"], r.pii_paths, r.subject_id, key.aes)
        return canonical_json(envelope)

    async def _payloads(self, conn: Any, records: Sequence[PreparedRecord]) -> list[bytes]:
        """Canonical bytes of each envelope, PII encrypted under the subject's data key.

        Sealed payloads are reused when their data key is still the stored one; the rest
        (a new subject, a key shredded or re-wrapped since) are computed here.
        """
        if self.pii is None:
            return [
                r.payload if r.payload is not None else canonical_json(r.envelope) for r in records
            ]
        subjects = {r.subject_id for r in records if r.subject_id and r.pii_paths}
        keys = await self._subject_keys(conn, subjects) if subjects else {}
        out = []
        for r in records:
            if not r.pii_paths or not r.subject_id:
                out.append(r.payload if r.payload is not None else canonical_json(r.envelope))
                continue
            key = keys[r.subject_id]
            if r.payload is not None and r.sealed_with == key.wrapped:
                out.append(r.payload)
            else:
                out.append(self._protected(r, key))
        return out

    async def _subject_keys(self, conn: Any, subjects: set[str]) -> dict[str, SubjectKey]:
        """The stored data key of each subject (created on first sight), read in ``conn``'s
        transaction; unwrapped only when the cache does not hold that exact wrapped key."""
        assert self.pii is not None
        query = (
            f"SELECT subject_id, wrapped_key FROM {self._t('subject_key')} "
            "WHERE subject_id = ANY($1::text[])"
        )
        found = {
            r["subject_id"]: bytes(r["wrapped_key"]) for r in await conn.fetch(query, subjects)
        }
        missing = subjects - set(found)
        created: dict[str, tuple[bytes, bytes]] = {}
        if missing:
            new = [(s, *self.pii.new_subject_key(s)) for s in sorted(missing)]
            await conn.executemany(
                f"INSERT INTO {self._t('subject_key')} (subject_id, kek_id, wrapped_key) "
                "VALUES ($1, $2, $3) ON CONFLICT (subject_id) DO NOTHING",
                [(s, kid, wrapped) for s, _key, wrapped, kid in new],
            )
            created = {s: (wrapped, key) for s, key, wrapped, _kid in new}
            found.update(
                {r["subject_id"]: bytes(r["wrapped_key"]) for r in await conn.fetch(query, missing)}
            )
        out: dict[str, SubjectKey] = {}
        for subject, wrapped in found.items():
            entry = self.key_cache.get(subject)
            if entry is None or entry.wrapped != wrapped:
                mine = created.get(subject)
                data_key = (
                    mine[1]
                    if mine is not None and mine[0] == wrapped
                    else self.pii.unwrap(subject, wrapped)
                )
                entry = self.key_cache.put(subject, wrapped, data_key)
            out[subject] = entry
        return out

    # -- checkpoints -------------------------------------------------------------------

    async def create_checkpoint(
        self, signer: CheckpointSigner, namespace: str
    ) -> SignedCheckpoint | None:
        """Sign every chain head into the next checkpoint; ``None`` if nothing moved."""
        async with self.transaction() as conn:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"{self.schema}.checkpoint"
            )
            last = await conn.fetchrow(
                f"SELECT checkpoint_id, body FROM {self._t('audit_checkpoint')} "
                "ORDER BY checkpoint_id DESC LIMIT 1"
            )
            rows = await conn.fetch(
                f"SELECT chain_id, seq, hash, kafka_offset FROM {self._t('chain_head')} "
                "WHERE seq > 0 ORDER BY chain_id"
            )
            heads = tuple(
                ChainHead(r["chain_id"], r["seq"], bytes(r["hash"]), r["kafka_offset"])
                for r in rows
            )
            if not heads:
                return None
            prev_id, prev_digest = 0, GENESIS_HASH
            if last is not None:
                prev_id = last["checkpoint_id"]
                prev_digest = checkpoint_digest(bytes(last["body"]))
                previous = Checkpoint.parse(bytes(last["body"]))
                if {(h.chain_id, h.seq) for h in previous.heads} == {
                    (h.chain_id, h.seq) for h in heads
                }:
                    return None
            now_ms = time.time_ns() // 1_000_000
            checkpoint = Checkpoint(namespace, prev_id + 1, now_ms, prev_digest, heads)
            signed = signer.sign(checkpoint)
            await conn.execute(
                f"INSERT INTO {self._t('audit_checkpoint')} "
                "(checkpoint_id, body, signature, key_id, created_at) "
                "VALUES ($1, $2, $3, $4, $5)",
                signed.checkpoint_id,
                signed.body,
                signed.signature,
                signed.key_id,
                ms_time(now_ms),
            )
        return signed

    async def checkpoints(self, *, since_id: int = 0) -> list[SignedCheckpoint]:
        async with self.connection() as conn:
            rows = await conn.fetch(
                f"SELECT checkpoint_id, body, signature, key_id FROM "
                f"{self._t('audit_checkpoint')} WHERE checkpoint_id >= $1 ORDER BY checkpoint_id",
                since_id,
            )
        return [
            SignedCheckpoint(
                r["checkpoint_id"], bytes(r["body"]), bytes(r["signature"]), r["key_id"]
            )
            for r in rows
        ]

    async def checkpoint_times(self) -> dict[int, datetime]:
        """The ``created_at`` column of each checkpoint (verify checks it against the body)."""
        async with self.connection() as conn:
            rows = await conn.fetch(
                f"SELECT checkpoint_id, created_at FROM {self._t('audit_checkpoint')}"
            )
        return {r["checkpoint_id"]: r["created_at"] for r in rows}

    # -- reads for verify / export ---------------------------------------------------------

    async def chain_ids(self) -> set[str]:
        async with self.connection() as conn:
            heads = await conn.fetch(f"SELECT chain_id FROM {self._t('chain_head')}")
            logged = await conn.fetch(f"SELECT DISTINCT chain_id FROM {self._t('audit_log')}")
        return {r["chain_id"] for r in heads} | {r["chain_id"] for r in logged}

    async def rows(
        self, chain_id: str, *, from_seq: int = 0, to_seq: int | None = None, page: int = 5000
    ) -> AsyncIterator[ChainRow]:
        """Rows of one chain in seq order, paged by keyset."""
        cursor = from_seq - 1
        upper = to_seq if to_seq is not None else 2**62
        while True:
            async with self.connection() as conn:
                batch = await conn.fetch(
                    "SELECT seq, kafka_offset, key_id, prev_hash, hash, payload, event_id, "
                    "event_type, occurred_at, subject_id, recorded_at FROM "
                    f"{self._t('audit_log')} WHERE chain_id = $1 AND seq > $2 AND seq <= $3 "
                    "ORDER BY seq LIMIT $4",
                    chain_id,
                    cursor,
                    upper,
                    page,
                )
            for r in batch:
                yield ChainRow(
                    chain_id,
                    r["seq"],
                    r["kafka_offset"],
                    r["key_id"],
                    bytes(r["prev_hash"]),
                    bytes(r["hash"]),
                    bytes(r["payload"]),
                    RowColumns.of(
                        r["event_id"],
                        r["event_type"],
                        r["occurred_at"],
                        r["subject_id"],
                        r["recorded_at"],
                    ),
                )
            if len(batch) < page:
                return
            cursor = batch[-1]["seq"]

    async def window_bounds(
        self, chain_id: str, since: datetime, until: datetime
    ) -> tuple[int, int | None]:
        """The last seq recorded before ``since`` (0: none) and the first recorded at or
        after ``until`` (``None``: none): the rows just outside the window, which an export
        carries to prove the window is complete."""
        async with self.connection() as conn:
            row = await conn.fetchrow(
                f"SELECT (SELECT max(seq) FROM {self._t('audit_log')} "
                "WHERE chain_id = $1 AND recorded_at < $2) AS before, "
                f"(SELECT min(seq) FROM {self._t('audit_log')} "
                "WHERE chain_id = $1 AND recorded_at >= $3) AS after",
                chain_id,
                since,
                until,
            )
        return int(row["before"] or 0), (int(row["after"]) if row["after"] is not None else None)

    async def verify_state(self) -> tuple[int, str | None, bytes | None] | None:
        """The last full verification: checkpoint id, MAC key id and MAC (unauthenticated)."""
        async with self.connection() as conn:
            row = await conn.fetchrow(
                f"SELECT checkpoint_id, key_id, mac FROM {self._t('verify_state')}"
            )
        if row is None:
            return None
        mac = bytes(row["mac"]) if row["mac"] is not None else None
        return int(row["checkpoint_id"]), row["key_id"], mac

    async def set_verified(self, checkpoint_id: int, key_id: str, mac: bytes) -> None:
        async with self.connection() as conn:
            await conn.execute(
                f"INSERT INTO {self._t('verify_state')} (id, checkpoint_id, key_id, mac) "
                "VALUES (1, $1, $2, $3) ON CONFLICT (id) DO UPDATE SET checkpoint_id = $1, "
                "key_id = $2, mac = $3, verified_at = now()",
                checkpoint_id,
                key_id,
                mac,
            )

    # -- PII keys --------------------------------------------------------------------------

    async def wrapped_subject_key(self, subject: str) -> bytes | None:
        async with self.connection() as conn:
            value = await conn.fetchval(
                f"SELECT wrapped_key FROM {self._t('subject_key')} WHERE subject_id = $1", subject
            )
        return bytes(value) if value is not None else None

    async def shred(self, subject: str) -> bool:
        """Delete the subject's data key: its PII in every row becomes unreadable."""
        self.key_cache.discard(subject)
        async with self.connection() as conn:
            status = await conn.execute(
                f"DELETE FROM {self._t('subject_key')} WHERE subject_id = $1", subject
            )
        return bool(status == "DELETE 1")

    async def rewrap_subject_keys(self) -> int:
        """Re-wrap every data key under the active KEK (rows are untouched)."""
        if self.pii is None:
            return 0
        changed = 0
        async with self.connection() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT subject_id, wrapped_key FROM {self._t('subject_key')} FOR UPDATE"
            )
            for r in rows:
                new = self.pii.rewrap(bytes(r["wrapped_key"]))
                if new is not None:
                    await conn.execute(
                        f"UPDATE {self._t('subject_key')} SET wrapped_key = $2, kek_id = $3 "
                        "WHERE subject_id = $1",
                        r["subject_id"],
                        new,
                        self.pii.kek_id,
                    )
                    changed += 1
        return changed


__all__ = ["AuditStore", "BatchResult", "ChainFencedError", "PreparedRecord"]
