"""SecureHasher: verify, wrong password, pepper handling and rotation, rehash, strength."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from streaming.config import SecuritySettings
from streaming.errors import ConfigError
from streaming.security import (
    HashingError,
    SecureHasher,
    UnknownPepperError,
    validate_password_strength,
)
from streaming.security.hashing import common_passwords

from .conftest import PEPPER, fast_hasher

OTHER_PEPPER = "second-pepper-fedcba9876543210"


def test_verify_accepts_the_right_password(hasher: SecureHasher) -> None:
    stored = hasher.hash_password("Correct-Horse-7")
    assert stored.startswith(f"$pepper${hasher.current_pepper_id}$argon2id$")
    assert hasher.verify_password("Correct-Horse-7", stored)


def test_verify_rejects_a_wrong_password(hasher: SecureHasher) -> None:
    stored = hasher.hash_password("Correct-Horse-7")
    assert not hasher.verify_password("correct-horse-7", stored)
    assert not hasher.verify_password("", stored)


def test_each_hash_has_its_own_salt(hasher: SecureHasher) -> None:
    assert hasher.hash_password("same") != hasher.hash_password("same")


def test_settings_pepper_is_used_and_required() -> None:
    settings = SecuritySettings(password_pepper=SecretStr(PEPPER))
    from_settings = SecureHasher(settings, time_cost=1, memory_cost_kib=1024, parallelism=1)
    assert from_settings.current_pepper_id == fast_hasher(PEPPER).current_pepper_id
    with pytest.raises(ConfigError, match="SECURITY_PASSWORD_PEPPER"):
        SecureHasher(SecuritySettings(password_pepper=None))
    with pytest.raises(ConfigError, match="SECURITY_PASSWORD_PEPPER"):
        SecureHasher(pepper="too-short")


def test_hash_made_with_a_missing_pepper_cannot_be_verified(hasher: SecureHasher) -> None:
    stored = hasher.hash_password("Correct-Horse-7")
    stranger = fast_hasher(OTHER_PEPPER)
    with pytest.raises(UnknownPepperError) as info:
        stranger.verify_password("Correct-Horse-7", stored)
    assert info.value.pepper_id == hasher.current_pepper_id
    assert PEPPER not in str(info.value)


def test_the_pepper_takes_part_in_the_hash(hasher: SecureHasher) -> None:
    stored = hasher.hash_password("Correct-Horse-7")
    # Relabel the hash as if the other pepper made it: the HMAC pre-hash no longer matches.
    pid = hasher.current_pepper_id
    forged = stored.replace(pid, fast_hasher(OTHER_PEPPER).current_pepper_id)
    other = fast_hasher(OTHER_PEPPER)
    assert not other.verify_password("Correct-Horse-7", forged)


def test_pepper_rotation_keeps_old_hashes_working_and_flags_them(hasher: SecureHasher) -> None:
    old_hash = hasher.hash_password("Correct-Horse-7")
    rotated = fast_hasher(OTHER_PEPPER, [PEPPER])
    assert rotated.verify_password("Correct-Horse-7", old_hash)
    assert rotated.needs_rehash(old_hash)
    new_hash = rotated.hash_password("Correct-Horse-7")
    assert not rotated.needs_rehash(new_hash)
    assert new_hash.split("$")[2] == rotated.current_pepper_id


def test_rehash_when_argon2_parameters_change(hasher: SecureHasher) -> None:
    stored = hasher.hash_password("Correct-Horse-7")
    assert not hasher.needs_rehash(stored)
    stronger = fast_hasher(PEPPER, time_cost=2)
    assert stronger.needs_rehash(stored)
    assert stronger.verify_password("Correct-Horse-7", stored)  # still verifies meanwhile


@pytest.mark.parametrize("bad", ["plain-text", "$argon2id$v=19$m=8,t=1,p=1$x$y", "$pepper$"])
def test_malformed_hashes_raise(hasher: SecureHasher, bad: str) -> None:
    with pytest.raises(HashingError):
        hasher.verify_password("x", bad)


async def test_async_variants_match(hasher: SecureHasher) -> None:
    stored = await hasher.ahash_password("Correct-Horse-7")
    assert await hasher.averify_password("Correct-Horse-7", stored)
    assert not await hasher.averify_password("nope", stored)


@pytest.mark.parametrize(
    ("password", "username", "problem"),
    [
        ("Sh0rt!", None, "at least 12 characters"),
        ("alllowercaseletters", None, "at least three"),
        ("ALLUPPER1234567", None, "at least three"),
        ("Password123!", None, "too common"),
        ("P@ssw0rd!2024", None, "too common"),
        ("!!Sunshine2025!!", None, "too common"),
        ("Qwertyuiop123", None, "too common"),
        ("Alice-Trader-2024!", "alice", "username"),
        ("x" * 1025 + "A1!", None, "at most 1024"),
    ],
)
def test_strength_rules(password: str, username: str | None, problem: str) -> None:
    check = validate_password_strength(password, username=username)
    assert not check.ok
    assert any(problem in p for p in check.problems), check.problems


@pytest.mark.parametrize("password", ["Vivid-Lantern-Orbit-42", "kettle 7 Umbrella ridge"])
def test_strong_passwords_pass(password: str, hasher: SecureHasher) -> None:
    check = hasher.validate_password_strength(password, username="alice")
    assert check.ok, check.problems


def test_common_password_list_ships_with_the_package() -> None:
    words = common_passwords()
    assert len(words) > 200
    assert {"password", "123456", "qwerty", "letmein"} <= words
