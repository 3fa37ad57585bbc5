"""InMemoryRevocationStore: the single-process semantics the PostgreSQL store also has."""

from __future__ import annotations

import asyncio

from streaming.security import InMemoryRevocationStore, RevocationStore


async def test_revoke_family_and_single_use() -> None:
    store = InMemoryRevocationStore()
    assert isinstance(store, RevocationStore)
    assert not await store.is_revoked("j1", "f1")
    await store.revoke("j1", 100.0)
    assert await store.is_revoked("j1")
    await store.revoke_family("f1", 100.0)
    assert await store.is_revoked("other", "f1")
    assert not await store.is_revoked("other")
    results = await asyncio.gather(*(store.mark_used("r1", 100.0) for _ in range(10)))
    assert results.count(True) == 1


async def test_purge_drops_only_expired_entries() -> None:
    store = InMemoryRevocationStore()
    await store.revoke("old", 10.0)
    await store.revoke("new", 1000.0)
    assert await store.purge_expired(now=500.0) == 1
    assert not await store.is_revoked("old")
    assert await store.is_revoked("new")
