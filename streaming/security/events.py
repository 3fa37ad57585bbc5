"""Security events and the async callback that records them.

The audit logger of the [audit] area will implement :data:`AuditCallback`; until then
:func:`log_security_event` writes them with structlog. Events carry identifiers
(subject, ``jti``, family id) but never a token, password or key.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

_log = structlog.get_logger("streaming.security.audit")


class SecurityEventType(enum.StrEnum):
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    TOKEN_REFRESHED = "token_refreshed"  # noqa: S105 - an event name, not a secret
    REFRESH_REUSE_DETECTED = "refresh_reuse_detected"
    PERMISSION_DENIED = "permission_denied"
    TOKEN_REVOKED = "token_revoked"  # noqa: S105 - an event name, not a secret
    REVOKED_TOKEN_REFUSED = "revoked_token_refused"  # noqa: S105 - an event name


_WARNINGS = frozenset(
    {
        SecurityEventType.LOGIN_FAILED,
        SecurityEventType.REFRESH_REUSE_DETECTED,
        SecurityEventType.PERMISSION_DENIED,
        SecurityEventType.REVOKED_TOKEN_REFUSED,
    }
)


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """One security-relevant fact; ``details`` holds identifiers only, never secrets."""

    type: SecurityEventType
    subject: str | None
    details: Mapping[str, Any] = field(default_factory=dict)
    occurred_at: float = field(default_factory=time.time)


AuditCallback = Callable[[SecurityEvent], Awaitable[None]]


async def log_security_event(event: SecurityEvent) -> None:
    """Default :data:`AuditCallback`: one structlog line per event."""
    fields = {"security_event": event.type.value, "subject": event.subject, **event.details}
    if event.type in _WARNINGS:
        await _log.awarning("security_event", **fields)
    else:
        await _log.ainfo("security_event", **fields)


__all__ = ["AuditCallback", "SecurityEvent", "SecurityEventType", "log_security_event"]
