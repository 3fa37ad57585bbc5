"""RevocationLog and SharedRevocationStore over the in-memory transport: a revocation
published by one process reaches another's map, and a stale map fails closed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from streaming.config import KafkaSettings, SecuritySettings
from streaming.security import JWTManager, KeyRing, SigningKey
from streaming.security.errors import RevocationsUnavailableError, TokenRevokedError
from streaming.security.revocation import EntryKind
from streaming.security.revocation_log import (
    RevocationEntry,
    RevocationLog,
    SharedRevocationStore,
    horizon_s,
    shared_revocations,
)
from streaming.transport.base import Record, TopicPartition
from streaming.transport.memory import InMemoryTransport

TOPIC = "_streaming.revocations"


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def transport() -> InMemoryTransport:
    return InMemoryTransport()


@pytest_asyncio.fixture
async def stores(
    transport: InMemoryTransport,
) -> AsyncIterator[Callable[[], SharedRevocationStore]]:
    made: list[SharedRevocationStore] = []

    def make() -> SharedRevocationStore:
        store = SharedRevocationStore(RevocationLog(transport, topic=TOPIC, poll_timeout_ms=10))
        made.append(store)
        return store

    yield make
    for store in made:
        await store.stop()


async def _until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)  # poll


async def test_revocation_published_by_one_store_reaches_another(
    stores: Callable[[], SharedRevocationStore],
) -> None:
    writer, reader = stores(), stores()
    await reader.start()
    await reader.wait_current(5)
    assert not await reader.is_revoked("jti-1", "fam-1")

    await writer.revoke("jti-1", time.time() + 60)
    await writer.revoke_family("fam-9", time.time() + 60)

    await _until(lambda: reader.log.contains(EntryKind.FAMILY, "fam-9"))
    assert await reader.is_revoked("jti-1")
    assert await reader.is_revoked("other", "fam-9")
    assert not await reader.is_revoked("other", "fam-1")


async def test_a_late_starter_reads_the_whole_topic(
    stores: Callable[[], SharedRevocationStore],
) -> None:
    await stores().revoke("early", time.time() + 60)
    late = stores()
    await late.start()
    await late.wait_current(5)
    assert await late.is_revoked("early")


async def test_checks_fail_closed_before_start_and_when_the_tail_is_stale(
    transport: InMemoryTransport,
) -> None:
    clock = ManualClock()
    log = RevocationLog(transport, topic=TOPIC, max_lag_s=2.0, poll_timeout_ms=10, clock=clock)
    with pytest.raises(RevocationsUnavailableError, match="never"):
        log.contains(EntryKind.TOKEN, "x")
    await log.start()
    try:
        await log.wait_current(5)
        assert log.is_current() and not log.contains(EntryKind.TOKEN, "x")
        await log.stop()  # the tail stops confirming
        clock.now += 2.5
        assert not log.is_current()
        with pytest.raises(RevocationsUnavailableError, match=r"limit 2\.0s"):
            log.contains(EntryKind.TOKEN, "x")
    finally:
        await log.stop()


async def test_jwt_manager_refuses_a_token_revoked_by_another_process(
    stores: Callable[[], SharedRevocationStore],
) -> None:
    ring = KeyRing(SigningKey.generate("EdDSA"))
    issuer, verifier = stores(), stores()
    await verifier.start()
    await verifier.wait_current(5)
    api = JWTManager(SecuritySettings(), keys=ring, revocations=verifier)
    pair = await api.issue_tokens("alice", roles=["trader"])
    await api.verify_access_token(pair.access_token)

    await JWTManager(SecuritySettings(), keys=ring, revocations=issuer).revoke_family(
        pair.family_id
    )
    await _until(lambda: verifier.log.contains(EntryKind.FAMILY, pair.family_id))
    with pytest.raises(TokenRevokedError) as info:
        await api.verify_access_token(pair.access_token)
    assert info.value.family_id == pair.family_id


def test_entries_parse_only_what_writers_publish() -> None:
    entry = RevocationEntry(EntryKind.FAMILY, "fam", 123.5)

    def record(key: bytes | None, value: bytes | None) -> Record:
        return Record(TOPIC, 0, 0, 0, key, value)

    assert RevocationEntry.parse(record(entry.key(), entry.value())) == entry
    assert RevocationEntry.parse(record(entry.key(), None)) is None  # tombstone
    assert RevocationEntry.parse(record(b"used:x", entry.value())) is None
    assert RevocationEntry.parse(record(b"jti:x", b"not json")) is None
    assert RevocationEntry.parse(record(None, entry.value())) is None


async def test_expired_entries_are_dropped(stores: Callable[[], SharedRevocationStore]) -> None:
    store = stores()
    await store.revoke("old", time.time() - 1)
    await store.revoke("new", time.time() + 60)
    assert await store.purge_expired() == 1


def test_retention_outlives_the_longest_token() -> None:
    security = SecuritySettings(refresh_token_expire_days=3, jwt_leeway_s=5)
    store = shared_revocations(security, KafkaSettings(), transport=InMemoryTransport())
    assert horizon_s(security) == 3 * 86_400 + 5
    assert not store.durable


async def test_published_record_is_keyed_for_compaction(transport: InMemoryTransport) -> None:
    log = RevocationLog(transport, topic=TOPIC)
    await log.publish(RevocationEntry(EntryKind.TOKEN, "j1", 99.0))
    await log.stop()
    consumer = transport.consumer()
    await consumer.start()
    tp = TopicPartition(TOPIC, 0)
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        batch = await consumer.poll(timeout_ms=100)
    finally:
        await consumer.stop()
    (record,) = batch[tp]
    assert record.key == b"jti:j1"
