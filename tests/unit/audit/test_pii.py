"""Per-subject PII envelope encryption: round trip, binding, shredding, KEK rotation."""

from __future__ import annotations

import base64
import secrets

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from connectors.audit_sink.pii import PII_PREFIX, SHREDDED, PiiCipher, SubjectKeyCache
from streaming.security.errors import DecryptionError
from streaming.security.fields import FieldEncryptor, key_id

PATHS = ("actor.username", "ip_address", "user_agent")
RECORD = {
    "actor": {"actor_id": "u1", "username": "Alice"},
    "ip_address": "1.2.3.4",
    "user_agent": None,
}


def test_protect_encrypts_only_present_pii_and_leaves_the_input_alone() -> None:
    cipher = PiiCipher(FieldEncryptor(secrets.token_bytes(32)))
    data_key, wrapped, _kid = cipher.new_subject_key("u1")
    out = cipher.protect(RECORD, PATHS, "u1", data_key)
    assert out["actor"]["username"].startswith(PII_PREFIX)
    assert out["ip_address"].startswith(PII_PREFIX) and out["user_agent"] is None
    assert RECORD["actor"]["username"] == "Alice"  # type: ignore[index]
    key = cipher.unwrap("u1", wrapped)
    assert cipher.reveal(out, PATHS, "u1", key) == RECORD
    assert cipher.reveal(out, PATHS, "u1", None)["ip_address"] == SHREDDED


def test_ciphertext_is_bound_to_its_subject() -> None:
    cipher = PiiCipher(FieldEncryptor(secrets.token_bytes(32)))
    data_key, _wrapped, _kid = cipher.new_subject_key("u1")
    out = cipher.protect(RECORD, PATHS, "u1", data_key)
    with pytest.raises(DecryptionError):
        cipher.reveal(out, PATHS, "u2", data_key)


def test_kek_rotation_rewraps_the_data_key_only() -> None:
    old = secrets.token_bytes(32)
    before = PiiCipher(FieldEncryptor(old))
    data_key, wrapped, _kid = before.new_subject_key("u1")
    after = PiiCipher(FieldEncryptor(secrets.token_bytes(32), previous={key_id(old): old}))
    rewrapped = after.rewrap(wrapped)
    assert rewrapped is not None and after.rewrap(rewrapped) is None
    assert after.unwrap("u1", rewrapped) == data_key


def test_protect_accepts_a_prebuilt_cipher() -> None:
    cipher = PiiCipher(FieldEncryptor(secrets.token_bytes(32)))
    data_key, _wrapped, _kid = cipher.new_subject_key("u1")
    out = cipher.protect(RECORD, PATHS, "u1", AESGCM(data_key))
    assert out["actor"]["username"] != out["ip_address"]
    assert cipher.reveal(out, PATHS, "u1", data_key) == RECORD


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_subject_key_cache_is_bounded_least_recently_used_first() -> None:
    cache = SubjectKeyCache(max_subjects=2, clock=_Clock())
    for subject in ("a", "b"):
        cache.put(subject, subject.encode(), secrets.token_bytes(32))
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("c", b"c", secrets.token_bytes(32))
    assert len(cache) == 2 and cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None


def test_subject_key_cache_forgets_keys_after_the_ttl_and_on_discard() -> None:
    clock = _Clock()
    cache = SubjectKeyCache(ttl_s=10, clock=clock)
    entry = cache.put("a", b"wrapped-a", secrets.token_bytes(32))
    assert cache.get("a") is entry
    clock.now = 10.0
    assert cache.get("a") is None and len(cache) == 0
    cache.put("b", b"wrapped-b", secrets.token_bytes(32))
    cache.discard("b")
    assert cache.get("b") is None


def test_every_encrypted_value_gets_its_own_nonce() -> None:
    cipher = PiiCipher(FieldEncryptor(secrets.token_bytes(32)))
    data_key, _wrapped, _kid = cipher.new_subject_key("u1")
    aes = AESGCM(data_key)
    blobs = [cipher.protect(RECORD, PATHS, "u1", aes)["ip_address"] for _ in range(1000)]
    nonces = {base64.b64decode(b.removeprefix(PII_PREFIX))[:12] for b in blobs}
    assert len(nonces) == 1000
