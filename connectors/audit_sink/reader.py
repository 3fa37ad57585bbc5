# ruff: noqa: S608  # table/schema names are validated SQL identifiers, values are bound
"""Reads of the stored chains for the sink's start-up, ``verify`` and ``export``.

Rows come back as :class:`~streaming.audit.chain.ChainRow` with their bound columns, in
seq order and paged by keyset, so a verifier can stream chains of any length. Also the
``verify_state`` bookkeeping that lets ``verify --since-checkpoint`` skip verified rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime

from connectors.audit_sink.tables import AuditTables
from streaming.audit.chain import ChainHead, ChainRow, RowColumns


class ChainReader:
    """Chain heads, rows and the last verification of one audit schema."""

    def __init__(self, tables: AuditTables) -> None:
        self.tables = tables

    async def heads(self, chain_ids: Iterable[str] | None = None) -> dict[str, ChainHead]:
        """The stored head of each chain (all chains, or those in ``chain_ids``)."""
        query = f"SELECT chain_id, seq, hash, kafka_offset FROM {self.tables.name('chain_head')}"
        async with self.tables.connection() as conn:
            if chain_ids is None:
                rows = await conn.fetch(query)
            else:
                rows = await conn.fetch(
                    query + " WHERE chain_id = ANY($1::text[])", list(chain_ids)
                )
        return {
            r["chain_id"]: ChainHead(r["chain_id"], r["seq"], bytes(r["hash"]), r["kafka_offset"])
            for r in rows
        }

    async def duplicates(self) -> int:
        """How many duplicate event ids the sink has skipped, over all chains."""
        async with self.tables.connection() as conn:
            value = await conn.fetchval(
                f"SELECT coalesce(sum(duplicates), 0) FROM {self.tables.name('chain_head')}"
            )
        return int(value)

    async def chain_ids(self) -> set[str]:
        """Every chain with a head or a row (a head deleted under its rows still shows)."""
        async with self.tables.connection() as conn:
            heads = await conn.fetch(f"SELECT chain_id FROM {self.tables.name('chain_head')}")
            logged = await conn.fetch(
                f"SELECT DISTINCT chain_id FROM {self.tables.name('audit_log')}"
            )
        return {r["chain_id"] for r in heads} | {r["chain_id"] for r in logged}

    async def rows(
        self, chain_id: str, *, from_seq: int = 0, to_seq: int | None = None, page: int = 5000
    ) -> AsyncIterator[ChainRow]:
        """Rows of one chain in seq order, paged by keyset."""
        cursor = from_seq - 1
        upper = to_seq if to_seq is not None else 2**62
        while True:
            async with self.tables.connection() as conn:
                batch = await conn.fetch(
                    "SELECT seq, kafka_offset, key_id, prev_hash, hash, payload, event_id, "
                    "event_type, occurred_at, subject_id, recorded_at FROM "
                    f"{self.tables.name('audit_log')} WHERE chain_id = $1 AND seq > $2 "
                    "AND seq <= $3 ORDER BY seq LIMIT $4",
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
        log_table = self.tables.name("audit_log")
        async with self.tables.connection() as conn:
            row = await conn.fetchrow(
                f"SELECT (SELECT max(seq) FROM {log_table} "
                "WHERE chain_id = $1 AND recorded_at < $2) AS before, "
                f"(SELECT min(seq) FROM {log_table} "
                "WHERE chain_id = $1 AND recorded_at >= $3) AS after",
                chain_id,
                since,
                until,
            )
        return int(row["before"] or 0), (int(row["after"]) if row["after"] is not None else None)

    async def verify_state(self) -> tuple[int, str | None, bytes | None] | None:
        """The last full verification: checkpoint id, MAC key id and MAC (unauthenticated)."""
        async with self.tables.connection() as conn:
            row = await conn.fetchrow(
                f"SELECT checkpoint_id, key_id, mac FROM {self.tables.name('verify_state')}"
            )
        if row is None:
            return None
        mac = bytes(row["mac"]) if row["mac"] is not None else None
        return int(row["checkpoint_id"]), row["key_id"], mac

    async def set_verified(self, checkpoint_id: int, key_id: str, mac: bytes) -> None:
        """Record a full verification up to ``checkpoint_id`` (``mac``: the verifier's proof)."""
        async with self.tables.connection() as conn:
            await conn.execute(
                f"INSERT INTO {self.tables.name('verify_state')} (id, checkpoint_id, key_id, mac) "
                "VALUES (1, $1, $2, $3) ON CONFLICT (id) DO UPDATE SET checkpoint_id = $1, "
                "key_id = $2, mac = $3, verified_at = now()",
                checkpoint_id,
                key_id,
                mac,
            )


__all__ = ["ChainReader"]
