"""Audit hook for operator actions (resets, replays, redrives): who did what to which range.

The hook is any ``async (ReplayAuditEvent) -> None``. :func:`log_replay_action` writes a structlog
line; :func:`chain_hook` also publishes an ``AuditEvent`` through an
:class:`~streaming.audit.AuditLogger`, so the action lands in the tamper-evident chain.
"""

from __future__ import annotations

import getpass
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from streaming.config import RegistrySettings
from streaming.context import current_execution_context
from streaming.errors import ConfigError
from streaming.events import AuditEventType, AuditOutcome

if TYPE_CHECKING:
    from streaming.audit.logger import AuditLogger
    from streaming.transport.base import TransportFactory

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


@asynccontextmanager
async def audit_hook(
    mode: str,
    topic: str,
    transport: TransportFactory,
    *,
    active: bool,
    notice: Callable[[str], None] = lambda _: None,
) -> AsyncIterator[AuditHook]:
    """The hook an operator action reports to, by ``--audit`` mode (auto, chain, log).

    ``chain`` publishes to ``topic`` (which must exist before anything moves, so an action
    is never done without its audit record); ``auto`` is ``chain`` when REGISTRY_URL is
    set, else ``log`` with a ``notice``. Inactive (dry-run) actions change nothing and
    are not audited.
    """
    from streaming.audit.logger import AuditLogger
    from streaming.clients.producer import EventProducer
    from streaming.serde.client import SchemaRegistryClient

    if mode not in ("auto", "chain", "log"):
        raise ConfigError([f"--audit {mode!r}: expected auto, chain or log"])
    if not active:
        yield log_replay_action
        return
    registry = RegistrySettings()
    if mode == "log" or (mode == "auto" and not registry.configured):
        if mode == "auto":
            notice(
                "audit: REGISTRY_URL is not set, so this action is only logged; set it to "
                "record the action in the audit chain"
            )
        yield log_replay_action
        return
    admin = transport.admin()
    await admin.start()
    try:
        exists = topic in await admin.list_topics()
    finally:
        await admin.stop()
    if not exists:
        raise ConfigError(
            [
                f"audit topic {topic!r} does not exist: create it "
                f"(streaming topics ensure -t {topic}) or pass --audit log"
            ]
        )
    client = SchemaRegistryClient(registry)
    try:
        async with EventProducer(transport, client) as producer:
            yield chain_hook(AuditLogger(producer=producer, topic=topic, source="streaming-cli"))
    finally:
        await client.aclose()


__all__ = [
    "AuditHook",
    "ReplayAuditEvent",
    "audit_hook",
    "chain_hook",
    "current_actor",
    "log_replay_action",
]
