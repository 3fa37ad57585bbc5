"""Audit: the producer side (:mod:`.logger`) and the pure chain maths (:mod:`.chain`:
canonical encoding, MAC key ring, signed checkpoints) with its verifier (:mod:`.verifier`).

The PostgreSQL side lives in ``connectors/audit_sink``.
"""

from streaming.audit.logger import AuditLogger

__all__ = ["AuditLogger"]
