"""PasswordAuthenticator: events, verified-credential cache, re-hash on login, YAML store."""

from __future__ import annotations

from pathlib import Path

import pytest

from streaming.errors import AuthenticationError, ConfigError
from streaming.security import InMemoryCredentialStore, PasswordAuthenticator, SecureHasher

from .conftest import PEPPER, AuditRecorder, fast_hasher


async def test_successful_check_is_cached_until_ttl(
    hasher: SecureHasher, audit: AuditRecorder
) -> None:
    now = [0.0]
    store = InMemoryCredentialStore()
    store.add("ci", "Ci-Password-123", hasher)
    auth = PasswordAuthenticator(store, hasher, audit=audit, cache_ttl_s=10, clock=lambda: now[0])
    await auth.authenticate("ci", "Ci-Password-123")
    await auth.authenticate("ci", "Ci-Password-123")
    assert audit.types() == ["login"]  # second call answered from the cache
    now[0] = 11.0
    await auth.authenticate("ci", "Ci-Password-123")
    assert audit.types() == ["login", "login"]


async def test_failures_are_never_cached_and_password_change_misses(
    hasher: SecureHasher, audit: AuditRecorder
) -> None:
    store = InMemoryCredentialStore()
    store.add("ci", "Ci-Password-123", hasher)
    auth = PasswordAuthenticator(store, hasher, audit=audit)
    await auth.authenticate("ci", "Ci-Password-123")
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            await auth.authenticate("ci", "guess")
    store.add("ci", "New-Password-456", hasher)
    with pytest.raises(AuthenticationError):
        await auth.authenticate("ci", "Ci-Password-123")
    assert (await auth.authenticate("ci", "New-Password-456")).subject == "ci"
    assert audit.types() == ["login", "login_failed", "login_failed", "login_failed", "login"]


async def test_login_rehashes_after_pepper_rotation(
    hasher: SecureHasher, audit: AuditRecorder
) -> None:
    store = InMemoryCredentialStore()
    store.add("ci", "Ci-Password-123", hasher)
    rotated = fast_hasher("rotated-pepper-0123456789abcdef", [PEPPER])
    auth = PasswordAuthenticator(store, rotated, audit=audit)
    await auth.authenticate("ci", "Ci-Password-123")
    credential = await store.get("ci")
    assert credential is not None
    assert not rotated.needs_rehash(credential.password_hash)
    assert credential.password_hash not in repr(credential)


async def test_credentials_from_yaml(tmp_path: Path, hasher: SecureHasher) -> None:
    path = tmp_path / "users.yaml"
    stored = hasher.hash_password("Ci-Password-123")
    path.write_text(f"users:\n  ci:\n    password_hash: '{stored}'\n    roles: [schema-writer]\n")
    auth = PasswordAuthenticator(
        InMemoryCredentialStore.from_yaml(path), hasher, audit=AuditRecorder()
    )
    principal = await auth.authenticate("ci", "Ci-Password-123")
    assert principal.roles == {"schema-writer"}
    path.write_text("users:\n  ci: {roles: [x]}\n")
    with pytest.raises(ConfigError, match="password_hash"):
        InMemoryCredentialStore.from_yaml(path)
    with pytest.raises(ConfigError, match="cannot read"):
        InMemoryCredentialStore.from_yaml(tmp_path / "missing.yaml")
