"""The seed's security calls: HS256 from a lone secret, ExecutionContext in tokens,
hasher cost from SECURITY_PASSWORD_SALT_ROUNDS."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from streaming.config import SecuritySettings
from streaming.context import ExecutionContext, execution_context
from streaming.security import InMemoryRevocationStore, JWTManager, SecureHasher
from streaming.security.errors import TokenRevokedError
from streaming.security.hashing import time_cost_for_rounds

from .conftest import PEPPER, AuditRecorder

SECRET = "seed-secret-key-with-at-least-32-bytes!"


def seed_manager() -> JWTManager:
    """Built as the seed does: ``JWTManager(settings.security)``, only a secret set."""
    return JWTManager(
        SecuritySettings(jwt_secret_key=SecretStr(SECRET)),
        revocations=InMemoryRevocationStore(),
        audit=AuditRecorder(),
    )


async def test_a_lone_secret_gives_a_working_hs256_manager() -> None:
    manager = seed_manager()
    token = await manager.create_access_token("u1", ["order:create"])
    claims = await manager.verify_access_token(token)
    assert claims.subject == "u1"
    assert manager.keys.active.algorithm == "HS256"


async def test_execution_context_travels_positionally_and_by_keyword() -> None:
    manager = seed_manager()
    context = ExecutionContext.create_for_system("authenticate_user")
    positional = await manager.create_access_token("u1", ["order:create"], context)
    keyword = await manager.create_access_token(
        user_id="u1", permissions=["order:create"], execution_context=context
    )
    for token in (positional, keyword):
        ctx = (await manager.verify_access_token(token)).context
        assert ctx["correlation_id"] == context.correlation_id
        assert ctx["operation"] == "authenticate_user"
        assert "started_at" not in ctx  # only scalar values travel


async def test_the_bound_context_is_the_default() -> None:
    manager = seed_manager()
    context = ExecutionContext("login", user_id="u2")
    with execution_context(context):
        token = await manager.create_access_token("u2")
    assert (await manager.verify_access_token(token)).context["correlation_id"] == (
        context.correlation_id
    )


async def test_non_string_user_ids_become_the_subject() -> None:
    manager = seed_manager()
    token = await manager.create_access_token(42, [])
    assert (await manager.verify_access_token(token)).subject == "42"


async def test_other_context_types_are_refused() -> None:
    with pytest.raises(TypeError, match="ExecutionContext or a mapping"):
        await seed_manager().create_access_token("u1", [], object())  # type: ignore[arg-type]


async def test_rotation_and_revocation_still_work_with_a_context() -> None:
    manager = seed_manager()
    pair = await manager.issue_tokens(
        "u1", execution_context=ExecutionContext.create_for_system("login")
    )
    rotated = await manager.refresh(pair.refresh_token)
    await manager.revoke_family(rotated.family_id)
    with pytest.raises(TokenRevokedError):
        await manager.verify_access_token(rotated.access_token)


@pytest.mark.parametrize(("rounds", "passes"), [(12, 3), (13, 6), (14, 12), (11, 1), (4, 1)])
def test_salt_rounds_double_argon2_passes_per_round(rounds: int, passes: int) -> None:
    assert time_cost_for_rounds(rounds) == passes


def test_salt_rounds_setting_reaches_the_stored_hash() -> None:
    settings = SecuritySettings(password_pepper=SecretStr(PEPPER), password_salt_rounds=13)
    hasher = SecureHasher(settings, memory_cost_kib=1024, parallelism=1)
    stored = hasher.hash_password("password123")
    assert ",t=6," in stored
    assert hasher.verify_password("password123", stored)
    cheaper = SecureHasher(
        SecuritySettings(password_pepper=SecretStr(PEPPER)), memory_cost_kib=1024, parallelism=1
    )
    assert ",t=3," in cheaper.hash_password("password123")
    assert cheaper.needs_rehash(stored)  # a cost change re-hashes at the next login
