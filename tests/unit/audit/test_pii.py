"""Per-subject PII envelope encryption: round trip, binding, shredding, KEK rotation."""

from __future__ import annotations

import secrets

import pytest

from connectors.audit_sink.pii import PII_PREFIX, SHREDDED, PiiCipher
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
