"""Audit records for every registry change, handed to an injectable async hook.

The default hook (:func:`log_registry_change`) logs through structlog; the platform's
AuditLogger (audit topic) can be plugged in later as ``RegistryService(audit=...)``
without touching the registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """Who changed what, when, and the state before and after."""

    action: str
    actor: str | None
    subject: str | None
    before: Any
    after: Any
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    outcome: str = "success"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


RegistryAuditHook = Callable[[AuditRecord], Awaitable[None]]


async def log_registry_change(record: AuditRecord) -> None:
    """The default hook: one structured log line per change."""
    log.info("registry.audit", **record.to_json())


__all__ = ["AuditRecord", "RegistryAuditHook", "log_registry_change"]
