"""``AuditLogger``: the seed's API for publishing audit events to Kafka.

Events are typed :class:`~streaming.events.AuditEvent` records (the ``schemas/audit``
contract) sent through the idempotent :class:`~streaming.clients.producer.EventProducer`; the
audit sink chains them into PostgreSQL. Correlation id, trace id, user and IP come from
the current :mod:`streaming.context` and OpenTelemetry span when not given. PII fields
(``ip_address``, ``user_agent``, ``actor.username``) travel as plain values inside the
authenticated Kafka cluster and are envelope-encrypted by the sink at rest.

Built as the seed builds it, ``AuditLogger(encryption_key)``, the logger has no producer
yet: on first use it makes one from the settings (``KAFKA_*``, ``REGISTRY_URL``) for the
running event loop, creating the audit topic with ``LOG_AUDIT_RETENTION_DAYS`` retention
if it is missing; :meth:`AuditLogger.aclose` stops it. The ``encryption_key`` (32 bytes,
as ``SECURITY_ENCRYPTION_KEY``) encrypts ``details`` values under secret or PII keys
(``password``, ``email``, ...) before they leave the process, with the sink's envelope
format (:class:`~streaming.security.fields.FieldEncryptor`).
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from pydantic import SecretStr

from streaming.clients.producer import EventProducer
from streaming.config import Settings
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
from streaming.logging import is_sensitive_key
from streaming.security.events import SecurityEvent, SecurityEventType
from streaming.security.fields import FieldEncryptor, parse_key
from streaming.transport.base import RecordMetadata, TopicSpec

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


_DETAIL = b"audit.details."


class _OwnedProducer:
    """The producer an :class:`AuditLogger` built from settings, for one event loop."""

    def __init__(self, settings: Settings | None, topic: str) -> None:
        self._settings = settings
        self._topic = topic
        self._lock = asyncio.Lock()
        self._producer: EventProducer | None = None
        self._closers: list[Any] = []

    async def get(self) -> EventProducer:
        async with self._lock:
            if self._producer is None:
                self._producer = await self._start()
            return self._producer

    async def _start(self) -> EventProducer:
        from streaming.clients.topics import ensure_topics
        from streaming.config import get_settings
        from streaming.core.topics import audit_events_config
        from streaming.serde.client import SchemaRegistryClient
        from streaming.transport.kafka import KafkaTransport

        settings = self._settings or get_settings()
        transport = KafkaTransport(settings.kafka)
        admin = transport.admin()
        await admin.start()
        try:  # the sink's topic config: retention LOG_AUDIT_RETENTION_DAYS, never compacted
            config = audit_events_config(settings.logging.audit_retention_days)
            await ensure_topics(admin, [TopicSpec(self._topic, 1, config=config)])
        finally:
            await admin.stop()
        registry = SchemaRegistryClient(settings.registry)
        producer = EventProducer(transport, registry)
        try:
            await producer.start()
        except BaseException:
            await registry.aclose()
            raise
        self._closers = [producer.stop, registry.aclose]
        return producer

    async def close(self) -> None:
        async with self._lock:
            closers, self._closers, self._producer = self._closers, [], None
            for close in closers:
                await close()


def _current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


class AuditLogger:
    """Publishes audit events; share one per service (it holds no global state).

    ``AuditLogger(encryption_key)`` is the seed's form (producer from settings on first
    use); ``AuditLogger(producer)`` (or ``producer=``) sends through a producer you own.
    """

    def __init__(
        self,
        encryption_key: str | bytes | SecretStr | EventProducer | None = None,
        *,
        producer: EventProducer | None = None,
        topic: str = DEFAULT_AUDIT_TOPIC,
        source: str = "tradesense-streaming",
        settings: Settings | None = None,
    ) -> None:
        if isinstance(encryption_key, EventProducer):  # the form that predates the seed's
            producer, encryption_key = encryption_key, None
        self._producer = producer
        self._encryptor = FieldEncryptor(parse_key(encryption_key)) if encryption_key else None
        self.topic = topic
        self.source = source
        self._settings = settings
        self._owned: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _OwnedProducer] = (
            weakref.WeakKeyDictionary()
        )

    async def _get_producer(self) -> EventProducer:
        if self._producer is not None:
            return self._producer
        loop = asyncio.get_running_loop()
        owned = self._owned.get(loop)
        if owned is None:
            owned = self._owned[loop] = _OwnedProducer(self._settings, self.topic)
        return await owned.get()

    async def aclose(self) -> None:
        """Stop the producer this logger made for the running loop (not one passed in)."""
        owned = self._owned.pop(asyncio.get_running_loop(), None)
        if owned is not None:
            await owned.close()

    def _details(self, details: Mapping[str, Any] | None) -> dict[str, str]:
        out = {k: _text(v) for k, v in (details or {}).items()}
        if self._encryptor is not None:
            for key, value in out.items():
                if is_sensitive_key(key):
                    out[key] = self._encryptor.encrypt_str(value, context=_DETAIL + key.encode())
        return out

    def _metadata(self) -> EventMetadata:
        ctx = current_execution_context()
        return EventMetadata(
            correlation_id=ctx.correlation_id if ctx else None,
            trace_id=_current_trace_id(),
            source=self.source,
        )

    async def log(self, event: AuditEvent) -> RecordMetadata:
        """Send a fully built event (keyed by its resource id)."""
        producer = await self._get_producer()
        return await producer.send(self.topic, event)

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
        audit_ctx = current_audit_context()
        return await self._log_actor_event(
            event_type,
            user_id=user_id,
            username=username,
            anonymous=ActorType.SYSTEM,
            resource_type=resource_type or (audit_ctx.resource_type if audit_ctx else "unknown"),
            resource_id=resource_id or (audit_ctx.resource_id if audit_ctx else None),
            action=action or (audit_ctx.action if audit_ctx else str(event_type).lower()),
            outcome=outcome,
            details=details,
            ip_address=ip_address,
            user_agent=user_agent,
            session_id=session_id,
        )

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
        return await self._log_actor_event(
            event_type,
            user_id=user_id,
            username=username,
            anonymous=ActorType.ANONYMOUS,
            resource_type="authentication",
            resource_id=user_id or (ctx.user_id if ctx else None),
            action=str(AuditEventType(event_type).value).lower(),
            outcome=AuditOutcome.SUCCESS if success else AuditOutcome.FAILURE,
            details=extra,
            ip_address=ip_address,
            user_agent=user_agent,
        )

    async def _log_actor_event(
        self,
        event_type: AuditEventType | str,
        *,
        user_id: str | None,
        username: str | None,
        anonymous: ActorType,
        resource_type: str,
        resource_id: str | None,
        action: str,
        outcome: AuditOutcome,
        details: Mapping[str, Any] | None,
        ip_address: str | None,
        user_agent: str | None,
        session_id: str | None = None,
    ) -> AuditEvent:
        """Build and send one event; the actor and address default to the execution
        context's (``anonymous`` is the actor type when there is no user at all)."""
        ctx = current_execution_context()
        actor_id = user_id or (ctx.user_id if ctx else None)
        event = AuditEvent(
            metadata=self._metadata(),
            event_type=AuditEventType(event_type),
            actor=Actor(
                actor_type=ActorType.USER if actor_id else anonymous,
                actor_id=actor_id,
                username=username,
            ),
            resource_type=resource_type,
            resource_id=resource_id,
            action=action,
            outcome=outcome,
            details=self._details(details),
            ip_address=ip_address or (ctx.ip_address if ctx else None),
            user_agent=user_agent,
            session_id=session_id,
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
