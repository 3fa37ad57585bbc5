"""Password hashing: argon2id over an HMAC-SHA256 pepper pre-hash, plus strength rules.

Why both: argon2id (argon2-cffi) gives each password its own salt and makes guessing
expensive; the pepper is a server-side secret kept out of the database, so a stolen
table alone cannot be attacked offline. The stored string names which pepper made it::

    $pepper$<pepper id>$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>

The pepper id is derived from the pepper itself (an HMAC check value), so every
instance given the same pepper agrees on it without extra configuration. Rotation: set
the new pepper and keep the old one in ``previous_peppers``; old hashes still verify,
:meth:`SecureHasher.needs_rehash` reports them, and the login path re-hashes.

Cost: ``SECURITY_PASSWORD_SALT_ROUNDS`` (the seed's bcrypt-style work factor, at least
12) sets argon2's passes with bcrypt's meaning that each round doubles the work: 12
rounds are RFC 9106's recommended ``t=3`` (64 MiB, 4 lanes), 13 are ``t=6``, 14 ``t=12``.
An explicit ``time_cost`` argument wins (tests use it to stay fast).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import SecretStr

from streaming.config import SecuritySettings
from streaming.errors import ConfigError
from streaming.security.errors import HashingError, UnknownPepperError

_PREFIX = "$pepper$"
_MIN_PEPPER_BYTES = 16
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
BASE_SALT_ROUNDS = 12  # the compliance floor; maps to argon2's recommended t=3
BASE_TIME_COST = 3

Secret = str | bytes | SecretStr


def _secret_bytes(value: Secret) -> bytes:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value.encode("utf-8") if isinstance(value, str) else value


def time_cost_for_rounds(rounds: int) -> int:
    """argon2 passes for a bcrypt-style cost: 3 at 12 rounds, doubling per extra round
    (and halving per round below, down to one pass)."""
    if rounds >= BASE_SALT_ROUNDS:
        return BASE_TIME_COST << (rounds - BASE_SALT_ROUNDS)
    return max(1, BASE_TIME_COST >> (BASE_SALT_ROUNDS - rounds))


def pepper_id(pepper: Secret) -> str:
    """A stable, non-reversible name for a pepper (first 12 hex of an HMAC check value)."""
    return hmac.new(_secret_bytes(pepper), b"tradesense-pepper-id", hashlib.sha256).hexdigest()[:12]


class SecureHasher:
    """Hashes and verifies passwords; ``verify_password`` is constant-time via argon2."""

    def __init__(
        self,
        settings: SecuritySettings | None = None,
        *,
        pepper: Secret | None = None,
        previous_peppers: Iterable[Secret] = (),
        time_cost: int | None = None,
        memory_cost_kib: int = 65536,
        parallelism: int = 4,
    ) -> None:
        current = pepper if pepper is not None else (settings and settings.password_pepper)
        if not current or len(_secret_bytes(current)) < _MIN_PEPPER_BYTES:
            raise ConfigError(
                [
                    "SECURITY_PASSWORD_PEPPER is missing or shorter than "
                    f"{_MIN_PEPPER_BYTES} bytes; generate one with "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                ]
            )
        self._current_id = pepper_id(current)
        self._peppers = {pepper_id(p): _secret_bytes(p) for p in previous_peppers}
        self._peppers[self._current_id] = _secret_bytes(current)
        if time_cost is None:
            rounds = settings.password_salt_rounds if settings else BASE_SALT_ROUNDS
            time_cost = time_cost_for_rounds(rounds)
        self._argon = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost_kib,
            parallelism=parallelism,
            type=Type.ID,
        )
        self._dummy: str | None = None

    @property
    def current_pepper_id(self) -> str:
        return self._current_id

    def _prehash(self, pepper: bytes, password: str) -> bytes:
        return hmac.new(pepper, password.encode("utf-8"), hashlib.sha256).digest()

    def _split(self, stored: str) -> tuple[str, str]:
        if not stored.startswith(_PREFIX):
            raise HashingError("not a peppered password hash (expected '$pepper$<id>$argon2id$')")
        pid, sep, rest = stored[len(_PREFIX) :].partition("$")
        if not sep or not pid:
            raise HashingError("peppered password hash has no pepper id")
        return pid, "$" + rest

    def hash_password(self, password: str) -> str:
        """A fresh salted, peppered argon2id hash of ``password``."""
        pepper = self._peppers[self._current_id]
        encoded = self._argon.hash(self._prehash(pepper, password))
        return f"{_PREFIX}{self._current_id}{encoded}"

    def verify_password(self, password: str, stored: str) -> bool:
        """True if ``password`` matches; raises :class:`HashingError` if the hash is unusable
        here (malformed, or made with a pepper this server does not hold)."""
        pid, encoded = self._split(stored)
        pepper = self._peppers.get(pid)
        if pepper is None:
            raise UnknownPepperError(pid)
        try:
            return self._argon.verify(encoded, self._prehash(pepper, password))
        except VerifyMismatchError:
            return False
        except (VerificationError, InvalidHashError) as exc:
            raise HashingError(f"stored password hash cannot be verified: {exc}") from exc

    def verify_dummy(self, password: str) -> None:
        """Spend the same time as a real verify (for unknown users; hides who exists)."""
        if self._dummy is None:
            self._dummy = self.hash_password("dummy password for timing equalisation")
        self.verify_password(password, self._dummy)

    def needs_rehash(self, stored: str) -> bool:
        """True if the hash uses an old pepper or other argon2 parameters than ours."""
        pid, encoded = self._split(stored)
        try:
            return pid != self._current_id or self._argon.check_needs_rehash(encoded)
        except (InvalidHashError, ValueError) as exc:
            raise HashingError(f"stored password hash is malformed: {exc}") from exc

    async def ahash_password(self, password: str) -> str:
        """:meth:`hash_password` off the event loop (argon2 is deliberately slow)."""
        return await asyncio.to_thread(self.hash_password, password)

    async def averify_password(self, password: str, stored: str) -> bool:
        return await asyncio.to_thread(self.verify_password, password, stored)

    def validate_password_strength(
        self, password: str, *, username: str | None = None
    ) -> PasswordCheck:
        return validate_password_strength(password, username=username)


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    """The outcome of :func:`validate_password_strength`; ``problems`` are user-facing."""

    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@cache
def common_passwords() -> frozenset[str]:
    """The list shipped in ``streaming/security/data/common-passwords.txt``."""
    text = (
        resources.files("streaming.security")
        .joinpath("data/common-passwords.txt")
        .read_text(encoding="utf-8")
    )
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
_EDGES = re.compile(r"^[\W\d_]+|[\W\d_]+$")


def _guessable_forms(password: str) -> set[str]:
    lowered = password.lower()
    core = _EDGES.sub("", lowered)
    return {lowered, core, lowered.translate(_LEET), _EDGES.sub("", lowered.translate(_LEET))}


def validate_password_strength(
    password: str, *, username: str | None = None, min_length: int = MIN_PASSWORD_LENGTH
) -> PasswordCheck:
    """Length, at least three character classes, not a common password (also after
    stripping digits/symbols at the ends and undoing l33t-speak), not the username."""
    problems: list[str] = []
    if len(password) < min_length:
        problems.append(f"must be at least {min_length} characters long")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"must be at most {MAX_PASSWORD_LENGTH} characters long")
    classes = [
        any(c.islower() for c in password),
        any(c.isupper() for c in password),
        any(c.isdigit() for c in password),
        any(not c.isalnum() for c in password),
    ]
    if sum(classes) < 3:
        problems.append("must mix at least three of: lower case, upper case, digits, symbols")
    if _guessable_forms(password) & common_passwords():
        problems.append("is too common (it is on the list of frequently used passwords)")
    if username and len(username) >= 3 and username.lower() in password.lower():
        problems.append("must not contain the username")
    return PasswordCheck(tuple(problems))


__all__ = [
    "MIN_PASSWORD_LENGTH",
    "PasswordCheck",
    "SecureHasher",
    "common_passwords",
    "pepper_id",
    "time_cost_for_rounds",
    "validate_password_strength",
]
