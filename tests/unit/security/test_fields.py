"""FieldEncryptor: AES-256-GCM envelope encryption, key ids, rotation by re-wrapping."""

from __future__ import annotations

import base64
import os

import pytest
from pydantic import SecretStr

from streaming.config import SecuritySettings
from streaming.errors import ConfigError
from streaming.security import DecryptionError, FieldEncryptor, UnknownKeyError
from streaming.security.fields import key_id, parse_key

OLD, NEW = os.urandom(32), os.urandom(32)


def test_round_trip_and_fresh_ciphertext_each_time() -> None:
    enc = FieldEncryptor(OLD)
    a, b = enc.encrypt(b"alice@example.com"), enc.encrypt(b"alice@example.com")
    assert a != b
    assert b"alice" not in a
    assert enc.decrypt(a) == enc.decrypt(b) == b"alice@example.com"
    assert enc.key_id_of(a) == key_id(OLD) == enc.active_key_id


def test_context_binds_ciphertext_to_its_field() -> None:
    enc = FieldEncryptor(OLD)
    blob = enc.encrypt(b"4111111111111111", context=b"users.card")
    assert enc.decrypt(blob, context=b"users.card") == b"4111111111111111"
    with pytest.raises(DecryptionError, match="context"):
        enc.decrypt(blob, context=b"users.email")


def test_tampering_is_detected() -> None:
    enc = FieldEncryptor(OLD)
    blob = bytearray(enc.encrypt(b"secret"))
    blob[-1] ^= 1
    with pytest.raises(DecryptionError):
        enc.decrypt(bytes(blob))
    wrapped = bytearray(enc.encrypt(b"secret"))
    wrapped[15] ^= 1  # inside the wrapped data key
    with pytest.raises(DecryptionError, match="unwrap"):
        enc.decrypt(bytes(wrapped))
    with pytest.raises(DecryptionError, match="truncated"):
        enc.decrypt(bytes(blob[:20]))
    with pytest.raises(DecryptionError, match="version"):
        enc.decrypt(b"\x07garbage")


def test_rotation_rewraps_data_keys_without_touching_the_data() -> None:
    before = FieldEncryptor(OLD)
    blob = before.encrypt(b"pii", context=b"c")
    after = FieldEncryptor(NEW, previous={key_id(OLD): OLD})
    assert after.decrypt(blob, context=b"c") == b"pii"  # old key still readable
    assert after.needs_rewrap(blob)
    rewrapped = after.rewrap(blob)
    assert after.key_id_of(rewrapped) == key_id(NEW)
    assert not after.needs_rewrap(rewrapped)
    assert rewrapped[-len(b"pii") - 16 :] == blob[-len(b"pii") - 16 :]  # same data ciphertext
    assert after.rewrap(rewrapped) == rewrapped
    assert FieldEncryptor(NEW).decrypt(rewrapped, context=b"c") == b"pii"  # old key retired


def test_unknown_key_id() -> None:
    blob = FieldEncryptor(OLD).encrypt(b"pii")
    with pytest.raises(UnknownKeyError) as info:
        FieldEncryptor(NEW).decrypt(blob)
    assert info.value.key_id == key_id(OLD)


def test_text_form_for_json_columns() -> None:
    enc = FieldEncryptor(OLD)
    token = enc.encrypt_str("Jane Doe", context=b"users.name")
    assert token.startswith("enc1:")
    assert enc.decrypt_str(token, context=b"users.name") == "Jane Doe"
    with pytest.raises(DecryptionError):
        enc.decrypt_str("Jane Doe")


def test_key_parsing_from_settings() -> None:
    raw = os.urandom(32)
    for text in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(), raw.hex()):
        assert parse_key(text) == raw
    assert parse_key("k" * 32) == b"k" * 32
    enc = FieldEncryptor.from_settings(
        SecuritySettings(encryption_key=SecretStr(raw.hex())),
        previous_keys=(base64.b64encode(OLD).decode(),),
    )
    assert enc.decrypt(FieldEncryptor(OLD).encrypt(b"x")) == b"x"
    with pytest.raises(ConfigError, match="32 bytes"):
        parse_key("too-short")
    with pytest.raises(ConfigError, match="SECURITY_ENCRYPTION_KEY"):
        FieldEncryptor.from_settings(SecuritySettings(encryption_key=None))
