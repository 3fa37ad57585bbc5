"""``streaming db migrate``: every connector's tables, created or upgraded in one run.

Neutral ground: the command migrates the audit schema and the outbox table, so the
runner belongs to neither connector. Each migration is idempotent and takes its own
advisory lock, so concurrent runs (several deploys at once) are safe.
"""

from __future__ import annotations

from connectors.audit_sink.tables import AuditTables
from connectors.outbox_relay.outbox import migrate_outbox
from streaming.db import Database


async def migrate_database(
    database: Database,
    *,
    audit_schema: str = "audit",
    audit_writer_role: str | None = None,
    outbox_table: str = "outbox",
) -> None:
    """Create or upgrade the audit schema and the outbox table (safe to repeat)."""
    await AuditTables(database, audit_schema, writer_role=audit_writer_role).migrate()
    await migrate_outbox(database, outbox_table)


__all__ = ["migrate_database"]
