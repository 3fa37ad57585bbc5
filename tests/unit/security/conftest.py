"""Shared fixtures for the security unit tests: keys, settings, a recording audit sink."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from pydantic import SecretStr

from streaming.config import SecuritySettings
from streaming.security import (
    InMemoryRevocationStore,
    JWTManager,
    KeyRing,
    SecureHasher,
    SecurityEvent,
    SigningKey,
)

PEPPER = "unit-test-pepper-0123456789abcdef"


class AuditRecorder:
    """An AuditCallback that keeps the events it was given."""

    def __init__(self) -> None:
        self.events: list[SecurityEvent] = []

    async def __call__(self, event: SecurityEvent) -> None:
        self.events.append(event)

    def types(self) -> list[str]:
        return [e.type.value for e in self.events]


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate("EdDSA")


@pytest.fixture
def settings() -> SecuritySettings:
    return SecuritySettings(
        jwt_algorithm="EdDSA",
        jwt_issuer="tradesense-test",
        jwt_audience="tradesense-api",
        jwt_leeway_s=10,
        access_token_expire_minutes=15,
        refresh_token_expire_days=7,
        password_pepper=SecretStr(PEPPER),
    )


@pytest.fixture
def audit() -> AuditRecorder:
    return AuditRecorder()


@pytest.fixture
def revocations() -> InMemoryRevocationStore:
    return InMemoryRevocationStore()


@pytest.fixture
def make_manager(
    settings: SecuritySettings,
    signing_key: SigningKey,
    revocations: InMemoryRevocationStore,
    audit: AuditRecorder,
) -> Callable[..., JWTManager]:
    def make(**overrides: object) -> JWTManager:
        kwargs: dict[str, object] = {
            "keys": KeyRing(signing_key),
            "revocations": revocations,
            "audit": audit,
        }
        custom = overrides.pop("settings", None)
        kwargs.update(overrides)
        return JWTManager(custom or settings, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def manager(make_manager: Callable[..., JWTManager]) -> JWTManager:
    return make_manager()


def fast_hasher(
    pepper: str = PEPPER, previous: Sequence[str] = (), time_cost: int = 1
) -> SecureHasher:
    """Cheap argon2 parameters so the suite stays fast; production uses the defaults."""
    return SecureHasher(
        pepper=pepper,
        previous_peppers=previous,
        time_cost=time_cost,
        memory_cost_kib=1024 * time_cost,
        parallelism=1,
    )


@pytest.fixture(scope="session")
def hasher() -> SecureHasher:
    return fast_hasher()
