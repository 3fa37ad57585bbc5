"""Audit: the producer side (:mod:`.logger`) and the pure chain maths, one job a module:
:mod:`.canonical` (the bytes that are hashed and signed), :mod:`.keys` (row MAC and key
ring), :mod:`.chain` (rows, heads, appending), :mod:`.checkpoints` (signed snapshots of
every head) and :mod:`.verifier` (the first break and why).

The PostgreSQL side lives in ``connectors/audit_sink``.
"""

from streaming.audit.logger import AuditLogger

__all__ = ["AuditLogger"]
