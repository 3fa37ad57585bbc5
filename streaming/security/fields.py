"""Field-level envelope encryption (AES-256-GCM) with key ids and rotation.

Each value gets its own random 256-bit data key; the data key is wrapped by a master
key (key-encryption key) named by a short key id stored in the ciphertext. Rotating the
master key only re-wraps the data key (:meth:`FieldEncryptor.rewrap`); the data
ciphertext itself is untouched. Stores that hash whole blobs (the audit chain) keep the
old master keys for reading instead of re-wrapping rows they must not change.

Layout (version 1)::

    0x01 | len(kid) | kid | wrap nonce (12) | wrapped data key (32 + 16 tag)
         | data nonce (12) | ciphertext + tag (16)

The data is authenticated together with the version byte and the caller's ``context``
(e.g. ``b"users.email"``), so a value copied into another field does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from streaming.config import SecuritySettings
from streaming.errors import ConfigError
from streaming.security.errors import DecryptionError, UnknownKeyError

_VERSION = 1
_NONCE = 12
_KEY = 32
_WRAPPED = _KEY + 16
_TEXT_PREFIX = "enc1:"


def parse_key(value: str | bytes | SecretStr) -> bytes:
    """Accept a 32-byte key as base64 (std or url-safe), 64 hex chars, or 32 raw bytes."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if isinstance(raw, bytes):
        candidate = raw
    else:
        candidate = raw.encode("utf-8")
        text = raw.strip()
        # Not hex / not base64 after all: fall through to the raw-bytes reading.
        if len(text) == 2 * _KEY:
            with contextlib.suppress(ValueError):
                candidate = bytes.fromhex(text)
        elif len(text) in (43, 44):
            with contextlib.suppress(binascii.Error, ValueError):
                candidate = base64.urlsafe_b64decode(
                    text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4)
                )
    if len(candidate) != _KEY:
        raise ConfigError(
            [
                "SECURITY_ENCRYPTION_KEY must be 32 bytes (base64, 64 hex characters or 32 raw "
                "characters); generate one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            ]
        )
    return candidate


def key_id(key: bytes) -> str:
    """A stable, non-reversible 8-hex-digit name for a master key."""
    return hmac.new(key, b"tradesense-kek-id", hashlib.sha256).hexdigest()[:8]


class FieldEncryptor:
    """Encrypts with the active master key; decrypts with any key it was given."""

    def __init__(self, active: bytes, *, previous: Mapping[str, bytes] | None = None) -> None:
        if len(active) != _KEY:
            raise ConfigError(["field encryption master keys must be 32 bytes (AES-256)"])
        self._active_id = key_id(active)
        self._keys = {**(previous or {}), self._active_id: active}

    @classmethod
    def from_settings(
        cls, settings: SecuritySettings, *, previous_keys: tuple[str | SecretStr, ...] = ()
    ) -> FieldEncryptor:
        if settings.encryption_key is None:
            raise ConfigError(["SECURITY_ENCRYPTION_KEY is not set (32 bytes, base64 or hex)"])
        old = [parse_key(k) for k in previous_keys]
        return cls(parse_key(settings.encryption_key), previous={key_id(k): k for k in old})

    @property
    def active_key_id(self) -> str:
        return self._active_id

    def encrypt(self, plaintext: bytes, *, context: bytes = b"") -> bytes:
        data_key = AESGCM.generate_key(bit_length=256)
        data_nonce = os.urandom(_NONCE)
        body = AESGCM(data_key).encrypt(data_nonce, plaintext, bytes([_VERSION]) + context)
        return self._wrap(self._active_id, data_key) + data_nonce + body

    def _wrap(self, kid: str, data_key: bytes) -> bytes:
        kid_bytes = kid.encode("ascii")
        nonce = os.urandom(_NONCE)
        header = bytes([_VERSION, len(kid_bytes)]) + kid_bytes
        wrapped = AESGCM(self._keys[kid]).encrypt(nonce, data_key, header)
        return header + nonce + wrapped

    def _parse(self, blob: bytes) -> tuple[str, bytes, bytes, bytes]:
        """-> (kid, header, wrap nonce + wrapped key, data nonce + body)."""
        if len(blob) < 2 or blob[0] != _VERSION:
            raise DecryptionError("not an encrypted field (unknown format version)")
        end = 2 + blob[1]
        header = blob[:end]
        wrap_end = end + _NONCE + _WRAPPED
        if len(blob) < wrap_end + _NONCE + 16:
            raise DecryptionError("encrypted field is truncated")
        try:
            kid = header[2:].decode("ascii")
        except UnicodeDecodeError as exc:
            raise DecryptionError("encrypted field has a corrupt key id") from exc
        return kid, header, blob[end:wrap_end], blob[wrap_end:]

    def _unwrap(self, kid: str, header: bytes, wrapped: bytes) -> bytes:
        key = self._keys.get(kid)
        if key is None:
            raise UnknownKeyError(kid)
        try:
            return AESGCM(key).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], header)
        except InvalidTag as exc:
            raise DecryptionError("data key does not unwrap: tampered or wrong key") from exc

    def decrypt(self, blob: bytes, *, context: bytes = b"") -> bytes:
        kid, header, wrapped, payload = self._parse(blob)
        data_key = self._unwrap(kid, header, wrapped)
        try:
            return AESGCM(data_key).decrypt(
                payload[:_NONCE], payload[_NONCE:], bytes([_VERSION]) + context
            )
        except InvalidTag as exc:
            raise DecryptionError("field does not decrypt: tampered or wrong context") from exc

    def key_id_of(self, blob: bytes) -> str:
        return self._parse(blob)[0]

    def needs_rewrap(self, blob: bytes) -> bool:
        return self.key_id_of(blob) != self._active_id

    def rewrap(self, blob: bytes) -> bytes:
        """The same ciphertext with its data key wrapped by the active master key."""
        kid, header, wrapped, payload = self._parse(blob)
        if kid == self._active_id:
            return blob
        return self._wrap(self._active_id, self._unwrap(kid, header, wrapped)) + payload

    def encrypt_str(self, plaintext: str, *, context: bytes = b"") -> str:
        """Text form for JSON columns: ``enc1:`` + url-safe base64."""
        blob = self.encrypt(plaintext.encode("utf-8"), context=context)
        return _TEXT_PREFIX + base64.urlsafe_b64encode(blob).decode("ascii")

    def decrypt_str(self, token: str, *, context: bytes = b"") -> str:
        if not token.startswith(_TEXT_PREFIX):
            raise DecryptionError("not an encrypted text field (expected 'enc1:' prefix)")
        try:
            blob = base64.urlsafe_b64decode(token[len(_TEXT_PREFIX) :])
        except (binascii.Error, ValueError) as exc:
            raise DecryptionError("encrypted text field is not valid base64") from exc
        return self.decrypt(blob, context=context).decode("utf-8")


__all__ = ["FieldEncryptor", "key_id", "parse_key"]
