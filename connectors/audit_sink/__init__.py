"""Kafka audit topics -> PostgreSQL hash chains: sink, verification, export, shredding."""

from connectors.audit_sink.bundle import export_bundle, verify_bundle
from connectors.audit_sink.config import AuditSinkSettings
from connectors.audit_sink.pii import PiiCipher
from connectors.audit_sink.sink import AuditSink, SinkOptions, SinkStats
from connectors.audit_sink.store import AuditStore, ChainFencedError
from connectors.audit_sink.verify import VerifyReport, verify_store

__all__ = [
    "AuditSink",
    "AuditSinkSettings",
    "AuditStore",
    "ChainFencedError",
    "PiiCipher",
    "SinkOptions",
    "SinkStats",
    "VerifyReport",
    "export_bundle",
    "verify_bundle",
    "verify_store",
]
