"""The audit event contract (``schemas/audit``): who did what, to what, with what outcome."""

from __future__ import annotations

import enum
from typing import ClassVar

from pydantic import Field

from streaming.events.base import AvroModel, Event


class AuditEventType(enum.StrEnum):
    """What was audited; ``UNKNOWN`` is the enum default old readers fall back to."""

    USER_LOGIN = "USER_LOGIN"
    LOGIN_FAILED = "LOGIN_FAILED"
    LOGOUT = "LOGOUT"
    USER_REGISTERED = "USER_REGISTERED"
    USER_UPDATED = "USER_UPDATED"
    USER_DEACTIVATED = "USER_DEACTIVATED"
    ACCOUNT_LOCKED = "ACCOUNT_LOCKED"
    PASSWORD_CHANGED = "PASSWORD_CHANGED"  # noqa: S105
    PASSWORD_RESET_REQUESTED = "PASSWORD_RESET_REQUESTED"  # noqa: S105
    MFA_ENABLED = "MFA_ENABLED"
    MFA_DISABLED = "MFA_DISABLED"
    TOKEN_REFRESHED = "TOKEN_REFRESHED"  # noqa: S105
    TOKEN_REVOKED = "TOKEN_REVOKED"  # noqa: S105
    REFRESH_TOKEN_REUSE = "REFRESH_TOKEN_REUSE"  # noqa: S105
    PERMISSION_CHANGED = "PERMISSION_CHANGED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    ROLE_ASSIGNED = "ROLE_ASSIGNED"
    ROLE_REVOKED = "ROLE_REVOKED"
    ORDER_PLACED = "ORDER_PLACED"
    ORDER_MODIFIED = "ORDER_MODIFIED"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    ORDER_FILLED = "ORDER_FILLED"
    ORDER_REJECTED = "ORDER_REJECTED"
    POSITION_CHANGED = "POSITION_CHANGED"
    FUNDS_DEPOSITED = "FUNDS_DEPOSITED"
    FUNDS_WITHDRAWN = "FUNDS_WITHDRAWN"
    RISK_LIMIT_BREACHED = "RISK_LIMIT_BREACHED"
    DATA_ACCESSED = "DATA_ACCESSED"
    DATA_EXPORTED = "DATA_EXPORTED"
    DATA_DELETED = "DATA_DELETED"
    CONFIG_CHANGED = "CONFIG_CHANGED"
    KEY_ROTATED = "KEY_ROTATED"
    REGISTRY_CHANGE = "REGISTRY_CHANGE"
    DLQ_REDRIVE = "DLQ_REDRIVE"
    OFFSET_RESET = "OFFSET_RESET"
    REPLAY_STARTED = "REPLAY_STARTED"
    SYSTEM_ERROR = "SYSTEM_ERROR"
    UNKNOWN = "UNKNOWN"
    # appended after UNKNOWN: older readers resolve them to the enum default (UNKNOWN)
    SCHEMA_REGISTERED = "SCHEMA_REGISTERED"
    SCHEMA_DELETED = "SCHEMA_DELETED"
    REGISTRY_CONFIG_CHANGED = "REGISTRY_CONFIG_CHANGED"
    REGISTRY_MODE_CHANGED = "REGISTRY_MODE_CHANGED"


class ActorType(enum.StrEnum):
    USER = "USER"
    SERVICE = "SERVICE"
    SYSTEM = "SYSTEM"
    ANONYMOUS = "ANONYMOUS"


class Actor(AvroModel):
    """Who did it (``username`` is PII)."""

    avro_name: ClassVar[str] = "com.tradesense.audit.Actor"

    actor_type: ActorType
    actor_id: str | None = None
    username: str | None = None


class AuditOutcome(enum.StrEnum):
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    DENIED = "DENIED"
    ERROR = "ERROR"


class AuditEvent(Event):
    """One audited action; ``metadata`` holds occurred_at, correlation_id and trace_id.

    ``ip_address``, ``user_agent`` and ``actor.username`` are PII (see
    ``AuditEvent.avro_schema().pii_fields``): the audit sink encrypts them.
    """

    avro_name: ClassVar[str] = "com.tradesense.audit.AuditEvent"

    event_type: AuditEventType
    actor: Actor
    resource_type: str
    resource_id: str | None = None
    action: str
    outcome: AuditOutcome
    details: dict[str, str] = Field(default_factory=dict)
    ip_address: str | None = None
    user_agent: str | None = None
    session_id: str | None = None
