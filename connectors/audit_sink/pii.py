"""PII envelope encryption for audit rows: one data key per subject, wrapped by a KEK.

Each PII value becomes ``pii1:`` + base64(nonce || AES-256-GCM ciphertext) under the
subject's data key, authenticated with the subject and field path (a value moved to
another field or subject does not decrypt). The data key is stored wrapped by the
key-encryption key (:class:`~streaming.security.fields.FieldEncryptor`), so rotating the
KEK re-wraps data keys only and the hashed rows never change. Deleting a subject's
data key makes all of its PII unreadable (crypto-shredding) while the chain verifies.
The sink keeps unwrapped data keys in a bounded, expiring cache (:class:`SubjectKeyCache`)
but uses one only while the database still holds the same wrapped key.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from streaming.security.errors import DecryptionError
from streaming.security.fields import FieldEncryptor

PII_PREFIX = "pii1:"
SHREDDED = "[shredded]"
_NONCE = 12


def _aad(subject: str, path: str) -> bytes:
    return f"tradesense.audit.pii.v1|{subject}|{path}".encode()


@functools.lru_cache(maxsize=256)
def _split(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def _wrap_context(subject: str) -> bytes:
    return f"tradesense.audit.subject-key|{subject}".encode()


def _copy_along(record: dict[str, Any], path: str) -> tuple[dict[str, Any], str] | None:
    """Like :func:`_walk`, but copies each dict on the way so the input stays untouched."""
    parts = _split(path)
    node = record
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            return None
        node[part] = child = dict(child)
        node = child
    return node, parts[-1]


def _walk(record: dict[str, Any], path: str) -> tuple[dict[str, Any], str] | None:
    """The dict holding the last path element, or ``None`` when an ancestor is null."""
    parts = path.split(".")
    node: Any = record
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return None
    return (node, parts[-1]) if isinstance(node, dict) else None


class PiiCipher:
    """Encrypts and decrypts the PII fields of decoded records with per-subject keys."""

    def __init__(self, kek: FieldEncryptor) -> None:
        self._kek = kek

    @property
    def kek_id(self) -> str:
        return self._kek.active_key_id

    def new_subject_key(self, subject: str) -> tuple[bytes, bytes, str]:
        """-> (data key, wrapped data key, KEK id) for a subject seen for the first time."""
        data_key = AESGCM.generate_key(bit_length=256)
        wrapped = self._kek.encrypt(data_key, context=_wrap_context(subject))
        return data_key, wrapped, self._kek.key_id_of(wrapped)

    def unwrap(self, subject: str, wrapped: bytes) -> bytes:
        return self._kek.decrypt(wrapped, context=_wrap_context(subject))

    def rewrap(self, wrapped: bytes) -> bytes | None:
        """``wrapped`` under the active KEK, or ``None`` when it already is."""
        return self._kek.rewrap(wrapped) if self._kek.needs_rewrap(wrapped) else None

    @staticmethod
    def present(record: Mapping[str, Any], paths: Iterable[str]) -> list[str]:
        """The PII paths that hold a value in ``record``."""
        found = []
        for path in paths:
            hit = _walk(dict(record), path)
            if hit is not None and hit[0].get(hit[1]) is not None:
                found.append(path)
        return found

    @staticmethod
    def protect(
        record: Mapping[str, Any],
        paths: Iterable[str],
        subject: str,
        data_key: bytes | AESGCM,
    ) -> dict[str, Any]:
        """A copy of ``record`` with each non-null PII value replaced by its ciphertext.

        ``data_key`` may be an ``AESGCM`` already built for the key (the sink keeps one
        per subject: building it costs more than encrypting a short value).
        """
        out = dict(record)
        aes = data_key if isinstance(data_key, AESGCM) else AESGCM(data_key)
        for path in paths:
            hit = _copy_along(out, path)
            if hit is None or hit[0].get(hit[1]) is None:
                continue
            node, name = hit
            plain = str(node[name]).encode("utf-8")
            nonce = os.urandom(_NONCE)
            blob = nonce + aes.encrypt(nonce, plain, _aad(subject, path))
            node[name] = PII_PREFIX + base64.b64encode(blob).decode("ascii")
        return out

    @staticmethod
    def reveal(
        record: Mapping[str, Any], paths: Iterable[str], subject: str, data_key: bytes | None
    ) -> dict[str, Any]:
        """A copy with PII decrypted; with no key (shredded) the values read ``[shredded]``."""
        out = dict(record)
        for path in paths:
            hit = _copy_along(out, path)
            if hit is None:
                continue
            node, name = hit
            value = node.get(name)
            if not isinstance(value, str) or not value.startswith(PII_PREFIX):
                continue
            if data_key is None:
                node[name] = SHREDDED
                continue
            try:
                blob = base64.b64decode(value[len(PII_PREFIX) :], validate=True)
                plain = AESGCM(data_key).decrypt(blob[:_NONCE], blob[_NONCE:], _aad(subject, path))
            except (binascii.Error, ValueError, InvalidTag) as exc:
                raise DecryptionError(f"PII field {path} does not decrypt") from exc
            node[name] = plain.decode("utf-8")
        return out


@dataclass(frozen=True, slots=True)
class SubjectKey:
    """A subject's data key as stored (``wrapped``) and ready to encrypt with (``aes``)."""

    wrapped: bytes
    aes: AESGCM
    expires_at: float


class SubjectKeyCache:
    """Unwrapped per-subject data keys, bounded in number and age (LRU with a TTL).

    Unwrapping a data key and building its cipher costs more than encrypting a short
    PII value, so the sink keeps them across batches. An entry is used only while the
    database still holds the same wrapped key (the sink re-reads it in every batch
    transaction), so a shredded or re-keyed subject never gets new rows under the old
    key; the TTL bounds how long a shredded key can linger in a running sink's memory.
    """

    def __init__(
        self,
        max_subjects: int = 10_000,
        ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_subjects = max_subjects
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, SubjectKey] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, subject: str) -> SubjectKey | None:
        entry = self._entries.get(subject)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            del self._entries[subject]
            return None
        self._entries.move_to_end(subject)
        return entry

    def put(self, subject: str, wrapped: bytes, data_key: bytes) -> SubjectKey:
        entry = SubjectKey(wrapped, AESGCM(data_key), self._clock() + self.ttl_s)
        self._entries[subject] = entry
        self._entries.move_to_end(subject)
        while len(self._entries) > self.max_subjects:
            self._entries.popitem(last=False)
        return entry

    def discard(self, subject: str) -> None:
        self._entries.pop(subject, None)

    def clear(self) -> None:
        self._entries.clear()


__all__ = ["PII_PREFIX", "SHREDDED", "PiiCipher", "SubjectKey", "SubjectKeyCache"]
