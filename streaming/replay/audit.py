"""Audit hook for operator actions (resets, replays, redrives): who did what to which range.

The hook is any ``async (ReplayAuditEvent) -> None``. :func:`log_replay_action` writes a structlog
line; :func:`chain_hook` also publishes an ``AuditEvent`` through an
:class:`~streaming.audit.AuditLogger`, so the action lands in the tamper-evident chain.
"""

from __future__ import annotations

import getpass
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from streaming.context import current_execution_context
from streaming.events import AuditEventType, AuditOutcome

if TYPE_CHECKING:
    from streaming.audit.logger import AuditLogger

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


async def log_replay_action(event: ReplayAuditEvent) -> None:
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


def chain_hook(logger: AuditLogger) -> AuditHook:
    """A hook that logs the action and publishes it as an ``AuditEvent`` (``user_id`` is
    the actor). A failed publish raises: the caller decides whether that fails the run."""

    async def hook(event: ReplayAuditEvent) -> None:
        await log_replay_action(event)
        await logger.log_business_event(
            AuditEventType(event.event_type),
            user_id=event.actor,
            resource_type=event.resource_type,
            resource_id=event.resource_id,
            action=event.action,
            details=dict(event.details),
            outcome=AuditOutcome(event.outcome),
        )

    return hook


def current_actor() -> str:
    """The user of the current execution context, else the OS user running the tool."""
    ctx = current_execution_context()
    if ctx is not None and ctx.user_id:
        return ctx.user_id
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


__all__ = ["AuditHook", "ReplayAuditEvent", "chain_hook", "current_actor", "log_replay_action"]
