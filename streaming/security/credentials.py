"""Username/password authentication against hashed credentials.

Used for HTTP Basic on the schema registry (Confluent clients send
``basic.auth.user.info`` on every request). Because every request would otherwise pay a
full argon2 verification, a successful check is remembered for ``cache_ttl_s`` under an
HMAC of (username, password, stored hash) keyed by a per-process random key: no password
is kept, a failed attempt is never cached, and a password change misses the cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NoReturn, Protocol, runtime_checkable

import yaml

from streaming.errors import AuthenticationError, ConfigError
from streaming.security.events import (
    AuditCallback,
    SecurityEvent,
    SecurityEventType,
    log_security_event,
)
from streaming.security.hashing import SecureHasher
from streaming.security.principal import Principal

_MAX_CACHE = 4096


@dataclass(frozen=True, slots=True)
class Credential:
    username: str
    password_hash: str = field(repr=False)
    roles: frozenset[str] = frozenset()


@runtime_checkable
class CredentialStore(Protocol):
    async def get(self, username: str) -> Credential | None: ...

    async def update_hash(self, username: str, password_hash: str) -> None:
        """Store a re-hashed password (after a pepper or parameter change)."""
        ...


class InMemoryCredentialStore:
    """Credentials held in memory, optionally loaded from a YAML file of hashes::

    users:
      schema-ci: {password_hash: "$pepper$...", roles: [schema-writer]}
    """

    def __init__(self, credentials: Iterable[Credential] = ()) -> None:
        self._by_name = {c.username: c for c in credentials}

    async def get(self, username: str) -> Credential | None:
        return self._by_name.get(username)

    async def update_hash(self, username: str, password_hash: str) -> None:
        current = self._by_name.get(username)
        if current is not None:
            self._by_name[username] = replace(current, password_hash=password_hash)

    def add(
        self, username: str, password: str, hasher: SecureHasher, roles: Iterable[str] = ()
    ) -> None:
        self._by_name[username] = Credential(
            username, hasher.hash_password(password), frozenset(roles)
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> InMemoryCredentialStore:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError([f"cannot read credentials file {path}: {exc}"]) from exc
        users = data.get("users") if isinstance(data, Mapping) else None
        if not isinstance(users, Mapping):
            raise ConfigError([f"credentials file {path} needs a 'users' mapping"])
        creds = []
        for name, body in users.items():
            if not isinstance(body, Mapping) or not isinstance(body.get("password_hash"), str):
                raise ConfigError([f"credentials file {path}: user {name!r} needs password_hash"])
            creds.append(
                Credential(str(name), body["password_hash"], frozenset(body.get("roles") or []))
            )
        return cls(creds)


class PasswordAuthenticator:
    """Checks a username and password; emits LOGIN / LOGIN_FAILED."""

    def __init__(
        self,
        store: CredentialStore,
        hasher: SecureHasher,
        *,
        audit: AuditCallback = log_security_event,
        cache_ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._hasher = hasher
        self._audit = audit
        self._ttl_s = cache_ttl_s
        self._clock = clock
        self._cache_key = secrets.token_bytes(32)
        self._cache: dict[bytes, tuple[Principal, float]] = {}

    def _digest(self, credential: Credential, password: str) -> bytes:
        material = "\x00".join((credential.username, password, credential.password_hash))
        return hmac.new(self._cache_key, material.encode("utf-8"), hashlib.sha256).digest()

    async def authenticate(
        self, username: str, password: str, *, channel: str = "basic"
    ) -> Principal:
        """The user's principal, or :class:`AuthenticationError` (same message either way)."""
        credential = await self._store.get(username)
        if credential is None:
            await asyncio.to_thread(self._hasher.verify_dummy, password)  # same time as a miss
            await self._fail(username, channel)
        digest = self._digest(credential, password)
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > self._clock():
            return hit[0]
        if not await self._hasher.averify_password(password, credential.password_hash):
            await self._fail(username, channel)
        if self._hasher.needs_rehash(credential.password_hash):
            await self._store.update_hash(username, await self._hasher.ahash_password(password))
        principal = Principal(username, credential.roles, auth_method=channel)
        if len(self._cache) >= _MAX_CACHE:
            self._cache.clear()
        if self._ttl_s > 0:
            self._cache[self._digest(credential, password)] = (
                principal,
                self._clock() + self._ttl_s,
            )
        await self._audit(SecurityEvent(SecurityEventType.LOGIN, username, {"channel": channel}))
        return principal

    async def _fail(self, username: str, channel: str) -> NoReturn:
        await self._audit(
            SecurityEvent(SecurityEventType.LOGIN_FAILED, username, {"channel": channel})
        )
        raise AuthenticationError("invalid username or password")


__all__ = ["Credential", "CredentialStore", "InMemoryCredentialStore", "PasswordAuthenticator"]
