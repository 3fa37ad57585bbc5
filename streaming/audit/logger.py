"""``AuditLogger``: the seed's API for publishing audit events to Kafka.

Events are typed :class:`~streaming.events.AuditEvent` records (the ``schemas/audit``
contract) sent through the idempotent :class:`~streaming.clients.producer.EventProducer`; the
audit sink chains them into PostgreSQL. Correlation id, trace id, user and IP come from
the current :mod:`streaming.context` and OpenTelemetry span when not given. PII fields
(``ip_address``, ``user_agent``, ``actor.username``) travel as plain values inside the
authenticated Kafka cluster and are envelope-encrypted by the sink at rest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from streaming.clients.producer import EventProducer
from streaming.context import current_audit_context, current_execution_context
from streaming.core.topics import AUDIT_EVENTS_TOPIC
from streaming.events import (
    Actor,
    ActorType,
    AuditEvent,
    AuditEventType,
    AuditOutcome,
    EventMetadata,
)
from streaming.security.events import SecurityEvent, SecurityEventType
from streaming.transport.base import RecordMetadata

DEFAULT_AUDIT_TOPIC = AUDIT_EVENTS_TOPIC

_SECURITY_TYPES = {
    SecurityEventType.LOGIN: AuditEventType.USER_LOGIN,
    SecurityEventType.LOGIN_FAILED: AuditEventType.LOGIN_FAILED,
    SecurityEventType.TOKEN_REFRESHED: AuditEventType.TOKEN_REFRESHED,
    SecurityEventType.REFRESH_REUSE_DETECTED: AuditEventType.REFRESH_TOKEN_REUSE,
    SecurityEventType.PERMISSION_DENIED: AuditEventType.PERMISSION_DENIED,
    SecurityEventType.TOKEN_REVOKED: AuditEventType.TOKEN_REVOKED,
}
_FAILURES = {SecurityEventType.LOGIN_FAILED, SecurityEventType.REFRESH_REUSE_DETECTED}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, sort_keys=True, separators=(",", ":"))


def _current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


class AuditLogger:
    """Publishes audit events; share one per service (it holds no global state)."""

    def __init__(
        self,
        producer: EventProducer,
        *,
        topic: str = DEFAULT_AUDIT_TOPIC,
        source: str = "tradesense-streaming",
    ) -> None:
        self._producer = producer
        self.topic = topic
        self.source = source

    def _metadata(self) -> EventMetadata:
        ctx = current_execution_context()
        return EventMetadata(
            correlation_id=ctx.correlation_id if ctx else None,
            trace_id=_current_trace_id(),
            source=self.source,
        )

    async def log(self, event: AuditEvent) -> RecordMetadata:
        """Send a fully built event (keyed by its resource id)."""
        return await self._producer.send(self.topic, event)

    async def log_business_event(
        self,
        event_type: AuditEventType | str,
        *,
        user_id: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        action: str | None = None,
        details: Mapping[str, Any] | None = None,
        outcome: AuditOutcome = AuditOutcome.SUCCESS,
        username: str | None = None,
        ip_address: str | None = None,
        user_agent: str | None = None,
        session_id: str | None = None,
    ) -> AuditEvent:
        """Audit a business action; resource and action default to the audit context."""
        ctx = current_execution_context()
        audit_ctx = current_audit_context()
        actor_id = user_id or (ctx.user_id if ctx else None)
        event = AuditEvent(
            metadata=self._metadata(),
            event_type=AuditEventType(event_type),
            actor=Actor(
                actor_type=ActorType.USER if actor_id else ActorType.SYSTEM,
                actor_id=actor_id,
                username=username,
            ),
            resource_type=resource_type or (audit_ctx.resource_type if audit_ctx else "unknown"),
            resource_id=resource_id or (audit_ctx.resource_id if audit_ctx else None),
            action=action or (audit_ctx.action if audit_ctx else str(event_type).lower()),
            outcome=outcome,
            details={k: _text(v) for k, v in (details or {}).items()},
            ip_address=ip_address or (ctx.ip_address if ctx else None),
            user_agent=user_agent,
            session_id=session_id,
        )
        await self.log(event)
        return event

    async def log_authentication_event(
        self,
        event_type: AuditEventType | str,
        *,
        user_id: str | None = None,
        success: bool = True,
        ip_address: str | None = None,
        user_agent: str | None = None,
        username: str | None = None,
        failure_reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Audit a login, logout, token or MFA event (the seed's signature)."""
        extra = dict(details or {})
        if failure_reason:
            extra["failure_reason"] = failure_reason
        ctx = current_execution_context()
        actor_id = user_id or (ctx.user_id if ctx else None)
        event = AuditEvent(
            metadata=self._metadata(),
            event_type=AuditEventType(event_type),
            actor=Actor(
                actor_type=ActorType.USER if actor_id else ActorType.ANONYMOUS,
                actor_id=actor_id,
                username=username,
            ),
            resource_type="authentication",
            resource_id=actor_id,
            action=str(AuditEventType(event_type).value).lower(),
            outcome=AuditOutcome.SUCCESS if success else AuditOutcome.FAILURE,
            details={k: _text(v) for k, v in extra.items()},
            ip_address=ip_address or (ctx.ip_address if ctx else None),
            user_agent=user_agent,
        )
        await self.log(event)
        return event

    async def record_security_event(self, event: SecurityEvent) -> None:
        """An ``AuditCallback`` for :mod:`streaming.security` (JWT, RBAC) events."""
        await self.log_authentication_event(
            _SECURITY_TYPES.get(event.type, AuditEventType.UNKNOWN),
            user_id=event.subject,
            success=event.type not in _FAILURES
            and event.type is not SecurityEventType.PERMISSION_DENIED,
            details=event.details,
        )


__all__ = ["DEFAULT_AUDIT_TOPIC", "AuditLogger"]
