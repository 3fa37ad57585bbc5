"""The text a marked field carries once encrypted, and the typed marker readers get.

A marked (``"pii": true``) string becomes ``pii:v1:<key id>:<base64(nonce || AES-256-GCM
ciphertext)>``: still a string, so it fits the Avro contract unchanged. The associated
data binds the subject, the field path and the key id, so a value copied to another
field, another subject or presented under another key generation does not decrypt.
Pure: no I/O, no key storage.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from streaming.security.errors import DecryptionError

CIPHERTEXT_PREFIX = "pii:v1:"
_NONCE = 12
_TOKEN = re.compile(r"^pii:v1:([0-9a-f]{16}):([A-Za-z0-9+/]+={0,2})$")


def aad(subject: str, path: str, key_id: str) -> bytes:
    """The associated data: subject, field path and key id, unambiguously joined (each
    part length-prefixed, so no choice of separators in a subject can shift a boundary)."""
    return f"tradesense.pii.v1|{len(subject)}:{subject}|{len(path)}:{path}|{key_id}".encode()


@dataclass(frozen=True, slots=True)
class Token:
    """A parsed ciphertext field value."""

    key_id: str
    blob: bytes


def parse_token(value: object) -> Token | None:
    """The token in ``value``, or ``None`` when it is not one (e.g. clear text)."""
    if not isinstance(value, str) or not value.startswith(CIPHERTEXT_PREFIX):
        return None
    match = _TOKEN.match(value)
    if match is None:
        return None
    try:
        blob = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        return None
    return Token(match.group(1), blob) if len(blob) > _NONCE + 16 else None


def encrypt_text(aes: AESGCM, plain: str, *, subject: str, path: str, key_id: str) -> str:
    nonce = os.urandom(_NONCE)
    blob = nonce + aes.encrypt(nonce, plain.encode("utf-8"), aad(subject, path, key_id))
    return f"{CIPHERTEXT_PREFIX}{key_id}:{base64.b64encode(blob).decode('ascii')}"


def decrypt_token(aes: AESGCM, token: Token, *, subject: str, path: str) -> str:
    """The clear text; :class:`DecryptionError` when the value was altered or moved."""
    try:
        plain = aes.decrypt(
            token.blob[:_NONCE], token.blob[_NONCE:], aad(subject, path, token.key_id)
        )
    except InvalidTag as exc:
        raise DecryptionError(
            f"PII field {path} of subject {subject!r} does not decrypt under key "
            f"{token.key_id}: the value was altered or copied from another field or subject"
        ) from exc
    return plain.decode("utf-8")


class EncryptedValue(str):
    """A marked field this process did not decrypt: the ciphertext text, typed.

    ``shredded`` is true when the subject's key generation is gone (``streaming audit
    shred``), false when this process holds no KEK. Sending an event that carries one
    forwards the ciphertext unchanged.
    """

    subject: str
    path: str
    key_id: str
    shredded: bool

    def __new__(
        cls, token: str, *, subject: str, path: str, key_id: str, shredded: bool
    ) -> EncryptedValue:
        value = super().__new__(cls, token)
        value.subject = subject
        value.path = path
        value.key_id = key_id
        value.shredded = shredded
        return value

    def __repr__(self) -> str:
        state = "shredded" if self.shredded else "encrypted"
        return f"<{state} {self.path} of {self.subject!r}>"


__all__ = [
    "CIPHERTEXT_PREFIX",
    "EncryptedValue",
    "Token",
    "aad",
    "decrypt_token",
    "encrypt_text",
    "parse_token",
]
