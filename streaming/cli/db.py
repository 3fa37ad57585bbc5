"""``streaming db migrate``: create or upgrade the audit and outbox tables.

Exit codes: 0 done; 1 the migration failed; 2 invalid configuration.
"""

from __future__ import annotations

from streaming.cli._common import JsonOpt, emit_json, group, out, run
from streaming.cli.audit import sink_settings
from streaming.db import Database

app = group("Database schema management.")


@app.command("migrate")
def migrate_command(as_json: JsonOpt = False) -> None:
    """Create or upgrade the audit and outbox tables (idempotent)."""
    settings, audit = sink_settings()

    async def main() -> None:
        from connectors.migrations import migrate_database

        async with Database(settings.database) as database:
            await migrate_database(
                database, audit_schema=audit.db_schema, audit_writer_role=audit.writer_role
            )

    run(main, telemetry=False)
    if as_json:
        emit_json({"migrated": True, "audit_schema": audit.db_schema})
    else:
        out.print(f"migrated: audit schema '{audit.db_schema}', outbox table")


__all__ = ["app"]
