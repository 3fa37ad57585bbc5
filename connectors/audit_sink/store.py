"""PostgreSQL side of the audit sink: the audit tables of one schema, one object per job.

:class:`AuditStore` wires the jobs onto one set of tables (:mod:`.tables`: connections,
error translation, migration): ``writer`` (:mod:`.writer`: the batch transaction),
``checkpoints`` (:mod:`.checkpoints`: signing heads into checkpoints), ``reader``
(:mod:`.reader`: heads, rows and verification state for verify and export) and
``subject_keys`` (:mod:`.subject_keys`: PII data keys, shredding, re-wrapping).
"""

from __future__ import annotations

from connectors.audit_sink.checkpoints import CheckpointStore
from connectors.audit_sink.pii import PiiCipher, SubjectKeyCache
from connectors.audit_sink.reader import ChainReader
from connectors.audit_sink.subject_keys import SubjectKeys
from connectors.audit_sink.tables import AuditTables
from connectors.audit_sink.writer import ChainWriter
from streaming.db import Database


class AuditStore:
    """The audit tables of one schema (``AUDIT_DB_SCHEMA``), by job."""

    def __init__(
        self,
        database: Database,
        schema: str = "audit",
        *,
        writer_role: str | None = None,
        pii: PiiCipher | None = None,
        key_cache: SubjectKeyCache | None = None,
    ) -> None:
        self.tables = AuditTables(database, schema, writer_role=writer_role)
        cache = key_cache if key_cache is not None else SubjectKeyCache()
        self.subject_keys = SubjectKeys(self.tables, pii, cache)
        self.writer = ChainWriter(self.tables, self.subject_keys)
        self.checkpoints = CheckpointStore(self.tables)
        self.reader = ChainReader(self.tables)

    @property
    def schema(self) -> str:
        """The schema name, which is also the checkpoint namespace."""
        return self.tables.schema

    async def migrate(self) -> None:
        """Create or upgrade the schema (safe to run any number of times)."""
        await self.tables.migrate()


__all__ = ["AuditStore"]
