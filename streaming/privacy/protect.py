"""Producer side: marked fields encrypted before an event is serialized.

Every :class:`~streaming.clients.producer.EventProducer` (and so the audit logger, the
bus, replays' audit events and ``streaming produce``) and the outbox writer run events
through a :class:`FieldProtector` before serialization, so no Kafka topic, retry or DLQ
copy, outbox row or audit row ever holds a marked value in clear. Events whose type
marks nothing cost one dictionary lookup.
"""

from __future__ import annotations

from typing import TypeVar

import structlog

from streaming.config import SecuritySettings, read_settings
from streaming.events.base import Event
from streaming.privacy.keylog import SubjectKeyLog
from streaming.privacy.plan import get_path, plan_for, replace_paths
from streaming.privacy.tokens import encrypt_text, parse_token
from streaming.transport.base import TransportFactory

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=Event)


class FieldProtector:
    """Encrypts an event's marked fields under its subject's data key.

    With ``keys=None`` (no ``SECURITY_PII_KEK``: development only, refused in production)
    events pass unchanged and a warning is logged once per event type.
    """

    def __init__(self, keys: SubjectKeyLog | None) -> None:
        self.keys = keys if keys is not None and keys.provider is not None else None
        self._owned = keys
        self._warned: set[type[Event]] = set()

    @classmethod
    def from_settings(
        cls, transport: TransportFactory, security: SecuritySettings | None = None
    ) -> FieldProtector:
        security = security or read_settings(SecuritySettings)
        if security.pii_kek is None:
            return cls(None)
        return cls(SubjectKeyLog.from_settings(transport, security))

    async def protect(self, event: E) -> E:
        """``event`` with every marked value encrypted (the same object when none is set)."""
        plan = plan_for(type(event))
        if plan is None:
            return event
        clear = [
            (path, parts, value)
            for path, parts in plan.paths
            if isinstance(value := get_path(event, parts), str) and parse_token(value) is None
        ]
        if not clear:
            return event
        if self.keys is None:
            if type(event) not in self._warned:
                self._warned.add(type(event))
                log.warning(
                    "pii.sent_in_clear",
                    event_type=event.type_name(),
                    fix="set SECURITY_PII_KEK so producers encrypt marked fields",
                )
            return event
        subject = plan.subject_of(event)
        key_id, aes = await self.keys.encryption_key(subject)
        updates = {
            parts: encrypt_text(aes, value, subject=subject, path=path, key_id=key_id)
            for path, parts, value in clear
        }
        protected: E = replace_paths(event, updates)
        return protected

    async def close(self) -> None:
        if self._owned is not None:
            await self._owned.stop()


__all__ = ["FieldProtector"]
