"""Consumer side: marked fields decrypted before the handler sees the event.

:class:`FieldRevealer` turns each ciphertext field back into text when this process
holds the KEK and the subject's key generation still exists; otherwise the field holds
an :class:`~streaming.privacy.tokens.EncryptedValue` (``shredded`` or not), never an
exception. A value that does not decrypt under an existing key was altered: that raises
:class:`~streaming.security.errors.DecryptionError`, so the consumer dead-letters the
record (whose raw bytes, ciphertext included, the DLQ keeps).
"""

from __future__ import annotations

from typing import TypeVar

from streaming.config import SecuritySettings
from streaming.events.base import Event
from streaming.privacy.keylog import SubjectKeyLog
from streaming.privacy.plan import get_path, plan_for, replace_paths
from streaming.privacy.tokens import EncryptedValue, Token, decrypt_token, parse_token
from streaming.transport.base import TransportFactory

E = TypeVar("E", bound=Event)


class FieldRevealer:
    """Decrypts marked fields (``keys`` with a KEK) or marks them (no KEK)."""

    def __init__(self, keys: SubjectKeyLog | None) -> None:
        self.keys = keys if keys is not None and keys.provider is not None else None
        self._owned = keys

    @classmethod
    def from_settings(
        cls, transport: TransportFactory, security: SecuritySettings | None = None
    ) -> FieldRevealer:
        security = security or SecuritySettings()
        if security.pii_kek is None:
            return cls(None)
        return cls(SubjectKeyLog.from_settings(transport, security))

    async def reveal(self, event: E) -> E:
        """``event`` with marked fields decrypted or typed (the same object when none is)."""
        plan = plan_for(type(event))
        if plan is None:
            return event
        found: list[tuple[str, tuple[str, ...], str, Token]] = []
        for path, parts in plan.paths:
            value = get_path(event, parts)
            if isinstance(value, EncryptedValue):
                continue
            token = parse_token(value)
            if token is not None:
                found.append((path, parts, value, token))
        if not found:
            return event
        subject = plan.subject_of(event)
        updates: dict[tuple[str, ...], str] = {}
        for path, parts, text, token in found:
            aes = (
                None if self.keys is None else await self.keys.decryption_key(subject, token.key_id)
            )
            if aes is None:
                updates[parts] = EncryptedValue(
                    text,
                    subject=subject,
                    path=path,
                    key_id=token.key_id,
                    shredded=self.keys is not None,
                )
            else:
                updates[parts] = decrypt_token(aes, token, subject=subject, path=path)
        revealed: E = replace_paths(event, updates)
        return revealed

    async def close(self) -> None:
        if self._owned is not None:
            await self._owned.stop()


__all__ = ["FieldRevealer"]
