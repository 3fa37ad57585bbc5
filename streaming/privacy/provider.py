"""Where the key-encryption key (KEK) comes from: a small interface, an env-var provider.

Data keys never leave a process unwrapped; the KEK wraps them for the subject-keys
topic. A KMS plugs in by implementing :class:`KeyProvider` (wrap/unwrap calls to the
KMS); :class:`EnvKeyProvider` holds the KEK from ``SECURITY_PII_KEK`` (and previous
KEKs from ``SECURITY_PII_PREVIOUS_KEKS``, comma-separated, for reading during a rotation).
"""

from __future__ import annotations

from typing import Protocol

from streaming.config import SecuritySettings
from streaming.security.fields import FieldEncryptor, key_id, parse_key


class KeyProvider(Protocol):
    """Wraps and unwraps data keys; ``context`` is authenticated with the wrapped key."""

    @property
    def key_id(self) -> str: ...

    def wrap(self, data_key: bytes, context: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes: ...


class EnvKeyProvider:
    """A KEK held in this process (AES-256-GCM envelope with key ids and rotation)."""

    def __init__(self, encryptor: FieldEncryptor) -> None:
        self._encryptor = encryptor

    @classmethod
    def from_settings(cls, security: SecuritySettings) -> EnvKeyProvider | None:
        """The provider for ``SECURITY_PII_KEK``; ``None`` when it is not set."""
        if security.pii_kek is None:
            return None
        previous = []
        if security.pii_previous_keks is not None:
            previous = [
                parse_key(k.strip())
                for k in security.pii_previous_keks.get_secret_value().split(",")
                if k.strip()
            ]
        encryptor = FieldEncryptor(
            parse_key(security.pii_kek), previous={key_id(k): k for k in previous}
        )
        return cls(encryptor)

    @property
    def key_id(self) -> str:
        return self._encryptor.active_key_id

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        return self._encryptor.encrypt(data_key, context=context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        return self._encryptor.decrypt(wrapped, context=context)


__all__ = ["EnvKeyProvider", "KeyProvider"]
