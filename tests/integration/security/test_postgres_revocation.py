"""PostgresRevocationStore against a real PostgreSQL, and JWTManager instances sharing it."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from streaming.config import SecuritySettings
from streaming.errors import DatabaseUnavailableError
from streaming.security import (
    JWTManager,
    KeyRing,
    PostgresRevocationStore,
    RefreshTokenReuseError,
    RevocationStore,
    SecurityEvent,
    SigningKey,
    TokenPair,
    TokenRevokedError,
)

pytestmark = pytest.mark.integration


async def _store(engine: AsyncEngine, table: str) -> PostgresRevocationStore:
    store = PostgresRevocationStore(engine, table=table)
    await store.ensure_schema()
    return store


async def test_ensure_schema_is_idempotent_and_concurrency_safe(
    engine: AsyncEngine, table_name: str
) -> None:
    stores = [PostgresRevocationStore(engine, table=table_name) for _ in range(4)]
    await asyncio.gather(*(s.ensure_schema() for s in stores))
    await stores[0].ensure_schema()
    async with engine.connect() as conn:
        indexes = (
            (
                await conn.execute(
                    text("SELECT indexname FROM pg_indexes WHERE tablename = :t"), {"t": table_name}
                )
            )
            .scalars()
            .all()
        )
    assert any("expires_at" in name for name in indexes)
    assert isinstance(stores[0], RevocationStore)


async def test_revoke_and_family_lookups(engine: AsyncEngine, table_name: str) -> None:
    store = await _store(engine, table_name)
    later = time.time() + 3600
    assert not await store.is_revoked("j1", "f1")
    await store.revoke("j1", later)
    await store.revoke("j1", later - 10)  # idempotent; keeps the later expiry
    assert await store.is_revoked("j1")
    assert not await store.is_revoked("j2")
    await store.revoke_family("f1", later)
    assert await store.is_revoked("j2", "f1")
    assert not await store.is_revoked("j2", "f2")


async def test_mark_used_has_exactly_one_winner_under_concurrency(
    engine: AsyncEngine, table_name: str
) -> None:
    store = await _store(engine, table_name)
    later = time.time() + 3600
    results = await asyncio.gather(*(store.mark_used("refresh-1", later) for _ in range(12)))
    assert results.count(True) == 1
    assert not await store.is_revoked("refresh-1")  # used is not revoked


async def test_purge_removes_only_expired_rows(engine: AsyncEngine, table_name: str) -> None:
    store = await _store(engine, table_name)
    now = time.time()
    await store.revoke("old", now - 60)
    await store.revoke("new", now + 3600)
    await store.mark_used("old-refresh", now - 60)
    assert await store.purge_expired() == 2
    assert not await store.is_revoked("old")
    assert await store.is_revoked("new")


async def test_two_instances_share_revocations_and_reuse_detection(
    engine: AsyncEngine, table_name: str
) -> None:
    settings = SecuritySettings(jwt_issuer="it", jwt_audience="it")
    ring = KeyRing(SigningKey.generate("EdDSA"))
    store = await _store(engine, table_name)
    events: list[str] = []

    async def audit(event: SecurityEvent) -> None:
        events.append(event.type.value)

    api_a = JWTManager(settings, keys=ring, revocations=store, audit=audit)
    api_b = JWTManager(
        settings, keys=ring, revocations=PostgresRevocationStore(engine, table=table_name)
    )

    pair = await api_a.issue_tokens("alice", roles=["trader"])
    claims = await api_b.verify_access_token(pair.access_token)
    await api_a.revoke(claims.token_id)
    with pytest.raises(TokenRevokedError):
        await api_b.verify_access_token(pair.access_token)

    rotated = await api_b.refresh(pair.refresh_token)
    with pytest.raises(RefreshTokenReuseError):
        await api_a.refresh(pair.refresh_token)  # replay on the other instance
    with pytest.raises(TokenRevokedError):
        await api_b.verify_access_token(rotated.access_token)
    with pytest.raises(TokenRevokedError):
        await api_b.refresh(rotated.refresh_token)
    assert events == ["token_revoked", "refresh_reuse_detected"]


async def test_concurrent_refresh_of_one_token_revokes_the_family(
    engine: AsyncEngine, table_name: str
) -> None:
    settings = SecuritySettings(jwt_issuer="it", jwt_audience="it")
    ring = KeyRing(SigningKey.generate("EdDSA"))
    store = await _store(engine, table_name)
    managers = [JWTManager(settings, keys=ring, revocations=store) for _ in range(3)]
    pair = await managers[0].issue_tokens("alice")
    outcomes = await asyncio.gather(
        *(m.refresh(pair.refresh_token) for m in managers), return_exceptions=True
    )
    winners = [o for o in outcomes if isinstance(o, TokenPair)]
    assert len(winners) == 1
    # Losers either detect the reuse themselves or find the family already revoked.
    losers = [o for o in outcomes if not isinstance(o, TokenPair)]
    assert all(isinstance(o, RefreshTokenReuseError | TokenRevokedError) for o in losers)
    assert any(isinstance(o, RefreshTokenReuseError) for o in losers)
    winner = winners[0]
    with pytest.raises(TokenRevokedError):
        await managers[0].verify_access_token(winner.access_token)


async def test_unreachable_database_is_a_retriable_error() -> None:
    dead = create_async_engine("postgresql+asyncpg://nobody:pw@127.0.0.1:1/none")
    try:
        store = PostgresRevocationStore(dead)
        with pytest.raises(DatabaseUnavailableError) as info:
            await store.is_revoked("x")
        assert info.value.retriable
        assert "pw" not in str(info.value)
    finally:
        await dead.dispose()
