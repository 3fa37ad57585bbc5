"""Audit hook for operator actions (resets, replays, redrives): who did what to which range.

The hook is any ``async (ReplayAuditEvent) -> None``; the default writes a structlog line.
To send these to the audit chain, pass a hook that maps the event onto an ``AuditEvent``
(``event_type`` = :attr:`ReplayAuditEvent.event_type`) and hands it to the audit logger.
"""

from __future__ import annotations

import getpass
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import structlog

from streaming.context import current_execution_context

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ReplayAuditEvent:
    """One audited replay action. ``event_type`` matches ``AuditEventType`` names."""

    event_type: str  # OFFSET_RESET | REPLAY_STARTED | DLQ_REDRIVE
    action: str
    actor: str
    resource_type: str
    resource_id: str
    details: Mapping[str, str] = field(default_factory=dict)
    outcome: str = "SUCCESS"


AuditHook = Callable[[ReplayAuditEvent], Awaitable[None]]


async def log_audit(event: ReplayAuditEvent) -> None:
    """The default hook: one structured log line per action."""
    log.info(
        "replay audit",
        event_type=event.event_type,
        action=event.action,
        actor=event.actor,
        resource_type=event.resource_type,
        resource_id=event.resource_id,
        outcome=event.outcome,
        **dict(event.details),
    )


def current_actor() -> str:
    """The user of the current execution context, else the OS user running the tool."""
    ctx = current_execution_context()
    if ctx is not None and ctx.user_id:
        return ctx.user_id
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


__all__ = ["AuditHook", "ReplayAuditEvent", "current_actor", "log_audit"]
