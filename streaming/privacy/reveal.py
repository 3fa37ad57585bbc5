"""Consumer side: marked fields decrypted before the handler sees the event.

:class:`FieldRevealer` turns each ciphertext field back into text when this process
holds the KEK and the subject's key generation still exists; otherwise the field holds
an :class:`~streaming.privacy.tokens.EncryptedValue` (``shredded`` or not), never an
exception. A value that does not decrypt under an existing key was altered: that raises
:class:`~streaming.security.errors.DecryptionError`, so the consumer dead-letters the
record (whose raw bytes, ciphertext included, the DLQ keeps).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from streaming.config import SecuritySettings, read_settings
from streaming.events.base import Event
from streaming.privacy.keylog import SubjectKeyLog
from streaming.privacy.plan import get_path, plan_for, replace_paths
from streaming.privacy.tokens import EncryptedValue, Token, decrypt_token, parse_token
from streaming.serde.catalog import LocalSchema
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
        security = security or read_settings(SecuritySettings)
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


SHREDDED_TEXT = "[shredded]"
"""What a shredded value reads as where no typed marker fits (JSON output, reveal)."""


async def reveal_mapping(
    value: Mapping[str, Any], schema: LocalSchema, keys: SubjectKeyLog
) -> dict[str, Any]:
    """A decoded record (plain dicts, e.g. an audit row's event) with its marked fields
    decrypted; a shredded generation reads ``[shredded]``. Needs the KEK."""
    out = json.loads(json.dumps(value, default=str))
    if not schema.pii_fields or schema.pii_subject is None:
        return out  # type: ignore[no-any-return]
    subject_value = _walk(out, schema.pii_subject.split("."))
    if subject_value is None:
        metadata = out.get("metadata") or {}
        subject = f"event:{metadata.get('event_id')}"
    else:
        subject = str(subject_value)
    for path in schema.pii_fields:
        *parents, name = path.split(".")
        node = _walk(out, parents) if parents else out
        if not isinstance(node, dict):
            continue
        token = parse_token(node.get(name))
        if token is None:
            continue
        aes = await keys.decryption_key(subject, token.key_id)
        node[name] = (
            SHREDDED_TEXT if aes is None else decrypt_token(aes, token, subject=subject, path=path)
        )
    return out  # type: ignore[no-any-return]


def _walk(node: Any, parts: Sequence[str]) -> Any:
    for part in parts:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


__all__ = ["SHREDDED_TEXT", "FieldRevealer", "reveal_mapping"]
