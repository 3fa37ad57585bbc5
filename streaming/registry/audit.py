"""Audit records for every registry change, handed to an injectable async hook.

:func:`log_registry_change` logs through structlog (the hook without Kafka);
:func:`chain_hook` also publishes each change as a typed ``AuditEvent`` through the
platform's :class:`~streaming.audit.AuditLogger`, so it lands in the tamper-evident chain.

Failure policy (:class:`AuditGate`): the ``_schemas`` write is committed before its
event is published, so a failed publish cannot undo the change. The change is answered
with 500/50001 saying so, its record is kept, and every later change is refused with
503/50003 (nothing written) until the kept records publish: changes fail closed, reads
stay open (serializers and deserializers keep working while the audit topic is down).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from streaming.context import current_execution_context
from streaming.events import Actor, ActorType, AuditEvent, AuditEventType, AuditOutcome
from streaming.events.base import EventMetadata
from streaming.registry.errors import NotReady, StoreError

if TYPE_CHECKING:
    from streaming.audit.logger import AuditLogger

log = structlog.get_logger(__name__)

EVENT_TYPES = {
    "schema.register": AuditEventType.SCHEMA_REGISTERED,
    "schema.delete": AuditEventType.SCHEMA_DELETED,
    "schema.delete_permanent": AuditEventType.SCHEMA_DELETED,
    "subject.delete": AuditEventType.SCHEMA_DELETED,
    "subject.delete_permanent": AuditEventType.SCHEMA_DELETED,
    "config.update": AuditEventType.REGISTRY_CONFIG_CHANGED,
    "config.delete": AuditEventType.REGISTRY_CONFIG_CHANGED,
    "mode.update": AuditEventType.REGISTRY_MODE_CHANGED,
    "mode.delete": AuditEventType.REGISTRY_MODE_CHANGED,
}
"""Registry action -> the audit event type it is recorded under."""

GLOBAL = "(global)"
"""``resource_id`` of a change to the global config or mode (no subject)."""


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
    client: str | None = field(
        default_factory=lambda: ctx.ip_address if (ctx := current_execution_context()) else None
    )
    """The caller's address (from the request's execution context), if known."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


RegistryAuditHook = Callable[[AuditRecord], Awaitable[None]]


async def log_registry_change(record: AuditRecord) -> None:
    """The default hook: one structured log line per change."""
    log.info("registry.audit", **record.to_json())


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def audit_event(record: AuditRecord, *, source: str) -> AuditEvent:
    """The ``AuditEvent`` for one registry change (``before``/``after`` as JSON text)."""
    ctx = current_execution_context()
    return AuditEvent(
        metadata=EventMetadata(
            occurred_at=record.at,
            correlation_id=ctx.correlation_id if ctx else None,
            source=source,
        ),
        event_type=EVENT_TYPES.get(record.action, AuditEventType.REGISTRY_CHANGE),
        actor=Actor(
            actor_type=ActorType.USER if record.actor else ActorType.ANONYMOUS,
            actor_id=record.actor,
        ),
        resource_type="schema_registry.subject" if record.subject else "schema_registry",
        resource_id=record.subject if record.subject is not None else GLOBAL,
        action=record.action,
        outcome=AuditOutcome(record.outcome.upper()),
        details={"before": _text(record.before), "after": _text(record.after)},
        ip_address=record.client,
    )


def chain_hook(logger: AuditLogger) -> RegistryAuditHook:
    """A hook that logs the change and publishes it to ``logger``'s audit topic."""

    async def hook(record: AuditRecord) -> None:
        await log_registry_change(record)
        await logger.log(audit_event(record, source=logger.source))

    return hook


class AuditGate:
    """Publishes records in order through ``hook``; blocks changes while that fails.

    ``warm_up`` prepares the publisher before the first record is published; registering
    the audit contract is itself a registry change, so records made while it runs are
    held and published right after it. A failed warm-up is retried by the next change.
    """

    def __init__(
        self, hook: RegistryAuditHook, *, warm_up: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self._hook = hook
        self._warm_up = warm_up
        self._warming = False
        self._pending: list[AuditRecord] = []
        self._failure: BaseException | None = None
        self._publishing = asyncio.Lock()  # one flush at a time keeps the order

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def settle(self) -> None:
        """Warm up (if due) and publish held records; failures are kept for :meth:`check`."""
        if self._warming:
            return
        warm_up = self._warm_up
        if warm_up is not None:
            self._warming = True
            try:
                await warm_up()
            except Exception as exc:
                self._failure = exc
                log.error("registry.audit_unavailable", error=str(exc))
                return
            finally:
                self._warming = False
            self._warm_up = None
        try:
            await self._flush()
        except StoreError:
            return

    def check(self) -> None:
        """Raise NotReady (503, before anything is written) while the trail is behind."""
        if self._warming or (self._warm_up is None and not self._pending):
            return
        raise NotReady(
            "registry changes are refused until they can be audited "
            f"({self._failure or 'audit publisher not started'}); reads keep working; "
            "check the audit topic and the registry's Kafka access"
        )

    async def record(self, record: AuditRecord) -> None:
        """Publish ``record`` (after older ones); StoreError (500) if that fails."""
        self._pending.append(record)
        if not self._warming and self._warm_up is None:
            await self._flush()

    async def _flush(self) -> None:
        async with self._publishing:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        while self._pending:
            try:
                await self._hook(self._pending[0])
            except Exception as exc:
                self._failure = exc
                log.error(
                    "registry.audit_unpublished",
                    error=str(exc),
                    pending=[r.to_json() for r in self._pending],
                )
                raise StoreError(
                    f"the change was stored, but its audit event could not be published "
                    f"({exc}); further changes are refused until it is"
                ) from exc
            self._pending.pop(0)
        self._failure = None


__all__ = [
    "EVENT_TYPES",
    "GLOBAL",
    "AuditGate",
    "AuditRecord",
    "RegistryAuditHook",
    "audit_event",
    "chain_hook",
    "log_registry_change",
]
