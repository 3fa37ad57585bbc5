# ruff: noqa: S608  # table/schema names are validated SQL identifiers, no values are inlined
"""The audit chain at a glance, for ``streaming top``: heads, newest checkpoint, last verify.

Read-only and cheap (three small queries, no rows of ``audit_log``), so it can run every
second. Ages come from the database's clock, like the timestamps they are measured from.
The verify row is shown as stored: checking its MAC needs the verifier's key, which an
operator's view does not hold.
"""

from __future__ import annotations

from typing import Any

from connectors.audit_sink.tables import AuditTables


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class AuditStatus:
    """Implements ``streaming.ops.top.AuditSource`` over one audit schema; a database
    without the schema is "unset" (nothing to show yet), not down."""

    def __init__(self, tables: AuditTables) -> None:
        self.tables = tables

    async def status(self) -> dict[str, Any]:
        heads = self.tables.name("chain_head")
        checkpoints = self.tables.name("audit_checkpoint")
        verify = self.tables.name("verify_state")
        async with self.tables.connection() as conn:
            if await conn.fetchval("SELECT to_regclass($1)", verify) is None:
                return {
                    "status": "unset",
                    "error": f"no audit schema {self.tables.schema!r} in this database; "
                    "run 'streaming db migrate' (or set AUDIT_DB_SCHEMA)",
                    "chains": [],
                    "checkpoint": None,
                    "last_verify": None,
                }
            chains = await conn.fetch(
                "SELECT chain_id, topic, kafka_partition, seq, kafka_offset, "
                f"coalesce(recorded_at, updated_at) AS recorded_at FROM {heads} ORDER BY chain_id"
            )
            checkpoint = await conn.fetchrow(
                "SELECT checkpoint_id, created_at, "
                "extract(epoch FROM now() - created_at)::float8 AS age_s "
                f"FROM {checkpoints} ORDER BY checkpoint_id DESC LIMIT 1"
            )
            verified = await conn.fetchrow(
                "SELECT checkpoint_id, verified_at, "
                f"extract(epoch FROM now() - verified_at)::float8 AS age_s FROM {verify}"
            )
        return {
            "chains": [
                {
                    "chain_id": r["chain_id"],
                    "topic": r["topic"],
                    "partition": r["kafka_partition"],
                    "seq": r["seq"],
                    "kafka_offset": r["kafka_offset"],
                    "recorded_at": _iso(r["recorded_at"]),
                }
                for r in chains
            ],
            "checkpoint": None
            if checkpoint is None
            else {
                "checkpoint_id": checkpoint["checkpoint_id"],
                "created_at": _iso(checkpoint["created_at"]),
                "age_s": round(checkpoint["age_s"], 1),
            },
            "last_verify": None
            if verified is None
            else {
                "result": "ok",
                "checkpoint_id": verified["checkpoint_id"],
                "verified_at": _iso(verified["verified_at"]),
                "age_s": round(verified["age_s"], 1),
            },
        }


__all__ = ["AuditStatus"]
