"""Revocations that every token verifier honours within a bound: ``_streaming.revocations``.

Why a compacted Kafka topic in front of the PostgreSQL table: the registry runs with
Kafka alone (its schemas live in ``_schemas``), and a database round trip per request
would make every verifier depend on PostgreSQL. So:

- writers (``streaming auth revoke``, refresh-token reuse detection, ``JWTManager.revoke``)
  write the durable PostgreSQL row where a database is configured, then publish
  ``jti:<id>`` or ``family:<id>`` with the entry's expiry (acks=all) to the topic;
- every verifier tails the topic (one partition, from the beginning, then continuously)
  into an in-memory map, so a check is a dictionary lookup;
- the bound: the tail repeatedly asks for the end offset and records when it has read up
  to it. A verifier whose last confirmation is older than ``revocation_max_lag_s``
  (default 2 s) refuses every token with :class:`RevocationsUnavailableError` rather
  than trust a stale list, so a revocation acknowledged at ``t`` is refused by every
  verifier from ``t + max_lag_s`` on (in practice within a few hundred milliseconds);
- entries die with their tokens: ``cleanup.policy=compact,delete`` with a retention
  longer than the longest token lifetime, and the map drops entries past their expiry.

Single-use refresh tokens need an atomic compare-and-set, which a log does not offer:
that stays in PostgreSQL (:meth:`PostgresRevocationStore.mark_used`), and without a
database it holds only within one process.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import structlog

from streaming.clients.topics import TopicDefaults
from streaming.config import DatabaseSettings, KafkaSettings, SecuritySettings
from streaming.core.topics import REVOCATIONS_TOPIC, revocations_config
from streaming.security.errors import RevocationsUnavailableError
from streaming.security.revocation import (
    EntryKind,
    InMemoryRevocationStore,
    PostgresRevocationStore,
)
from streaming.transport.base import OutgoingRecord, Record, TransportFactory
from streaming.transport.tail import TailedTopic

log = structlog.get_logger(__name__)

_PUBLISHED = (EntryKind.TOKEN, EntryKind.FAMILY)
_DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class RevocationEntry:
    """One revoked token id or family, useless after ``expires_at`` (epoch seconds)."""

    kind: EntryKind
    id: str
    expires_at: float

    def key(self) -> bytes:
        return f"{self.kind.value}:{self.id}".encode()

    def value(self) -> bytes:
        return json.dumps({"expires_at": self.expires_at}).encode()

    @classmethod
    def parse(cls, record: Record) -> RevocationEntry | None:
        """The entry a record carries; None for tombstones and foreign records."""
        if record.key is None or record.value is None:
            return None
        try:
            kind, _, ident = record.key.decode().partition(":")
            expires_at = float(json.loads(record.value)["expires_at"])
            entry = cls(EntryKind(kind), ident, expires_at)
        except (ValueError, KeyError, TypeError):
            return None
        return entry if entry.kind in _PUBLISHED and entry.id else None


def horizon_s(settings: SecuritySettings) -> float:
    """Seconds after issue beyond which no token of these settings is valid."""
    longest = max(
        settings.access_token_expire_minutes * 60, settings.refresh_token_expire_days * _DAY_S
    )
    return longest + settings.jwt_leeway_s


class RevocationLog:
    """Publishes revocations to the topic and tails it into memory (call ``start()`` to read)."""

    def __init__(
        self,
        transport: TransportFactory,
        *,
        topic: str = REVOCATIONS_TOPIC,
        retention_ms: int = 8 * _DAY_S * 1000,
        replication_factor: int | None = None,
        topic_config: Mapping[str, str] | None = None,
        max_lag_s: float = 2.0,
        poll_timeout_ms: int = 200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topic = topic
        self._clock = clock
        self._entries: dict[tuple[EntryKind, str], float] = {}
        self._purged_at = clock()
        self._tail = TailedTopic(
            transport,
            topic=topic,
            apply=self._apply,
            unavailable=RevocationsUnavailableError,
            on_round=self._housekeep,
            config={**(topic_config or {}), **revocations_config(retention_ms)},
            replication_factor=replication_factor,
            max_lag_s=max_lag_s,
            poll_timeout_ms=poll_timeout_ms,
            clock=clock,
        )
        self.max_lag_s = max_lag_s

    async def start(self) -> None:
        """Start tailing from the beginning; checks fail closed until it has caught up."""
        await self._tail.start()

    async def wait_current(self, timeout_s: float) -> None:
        """Block until the tail has read everything published before this call."""
        await self._tail.wait_current(timeout_s)

    async def stop(self) -> None:
        await self._tail.stop()

    async def publish(self, entry: RevocationEntry) -> None:
        """Append ``entry`` (acknowledged by the in-sync replicas) and apply it here at once."""
        await self._tail.publish(
            OutgoingRecord(self.topic, entry.value(), entry.key(), partition=0)
        )
        self.remember(entry)

    def remember(self, entry: RevocationEntry) -> None:
        key = (entry.kind, entry.id)
        self._entries[key] = max(entry.expires_at, self._entries.get(key, 0.0))

    def is_current(self) -> bool:
        """Whether the tail confirmed reading to the end within the last ``max_lag_s``."""
        return self._tail.is_current()

    def contains(self, kind: EntryKind, ident: str) -> bool:
        """Whether ``ident`` is revoked; raises if the list is not known to be current."""
        if not self.is_current():
            raise RevocationsUnavailableError(
                f"revocation list '{self.topic}' last confirmed current "
                f"{self._tail.staleness()} (limit {self.max_lag_s}s); is Kafka reachable and "
                "start() called?"
            )
        return (kind, ident) in self._entries

    def purge(self, now: float | None = None) -> int:
        cutoff = time.time() if now is None else now
        stale = [key for key, expires in self._entries.items() if expires < cutoff]
        for key in stale:
            del self._entries[key]
        return len(stale)

    def _housekeep(self) -> None:
        if self._clock() - self._purged_at > 60:
            self.purge()
            self._purged_at = self._clock()

    def _apply(self, record: Record) -> None:
        entry = RevocationEntry.parse(record)
        if entry is not None:
            self.remember(entry)


class SharedRevocationStore:
    """A :class:`RevocationStore` for many processes: checks read the tailed topic,
    writes go to PostgreSQL (durable, when configured) and then to the topic."""

    def __init__(
        self,
        log: RevocationLog,
        durable: PostgresRevocationStore | None = None,
        *,
        on_stop: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.log = log
        self._durable = durable
        self._local = InMemoryRevocationStore()
        self._on_stop = on_stop
        self._schema_ready = False

    async def _durable_store(self) -> PostgresRevocationStore | None:
        if self._durable is not None and not self._schema_ready:
            await self._durable.ensure_schema()
            self._schema_ready = True
        return self._durable

    async def start(self) -> None:
        """Tail the topic, seeded with the durable list (revocations older than the topic)."""
        durable = await self._durable_store()
        if durable is not None:
            for kind, ident, expires_at in await durable.active_entries(_PUBLISHED):
                self.log.remember(RevocationEntry(kind, ident, expires_at))
        await self.log.start()

    async def wait_current(self, timeout_s: float) -> None:
        await self.log.wait_current(timeout_s)

    async def stop(self) -> None:
        await self.log.stop()
        if self._on_stop is not None:
            await self._on_stop()

    async def _write(self, entry: RevocationEntry) -> None:
        durable = await self._durable_store()
        if durable is not None:
            if entry.kind is EntryKind.FAMILY:
                await durable.revoke_family(entry.id, entry.expires_at)
            else:
                await durable.revoke(entry.id, entry.expires_at)
        await self.log.publish(entry)

    async def revoke(self, jti: str, expires_at: float) -> None:
        await self._write(RevocationEntry(EntryKind.TOKEN, jti, expires_at))

    async def revoke_family(self, family_id: str, expires_at: float) -> None:
        await self._write(RevocationEntry(EntryKind.FAMILY, family_id, expires_at))

    async def is_revoked(self, jti: str, family_id: str | None = None) -> bool:
        if self.log.contains(EntryKind.TOKEN, jti):
            return True
        return family_id is not None and self.log.contains(EntryKind.FAMILY, family_id)

    async def mark_used(self, jti: str, expires_at: float) -> bool:
        durable = await self._durable_store()
        store = durable if durable is not None else self._local
        return await store.mark_used(jti, expires_at)

    @property
    def durable(self) -> bool:
        """Whether PostgreSQL holds the list (and makes refresh tokens single-use across processes)."""
        return self._durable is not None

    async def purge_expired(self, now: float | None = None) -> int:
        purged = self.log.purge(now)
        if self._durable is not None:
            purged += await self._durable.purge_expired(now)
        return purged


def shared_revocations(
    security: SecuritySettings,
    kafka: KafkaSettings,
    database: DatabaseSettings | None = None,
    *,
    transport: TransportFactory | None = None,
) -> SharedRevocationStore:
    """The store every process that verifies or revokes tokens should use.

    PostgreSQL joins only when ``database`` is configured (``DATABASE_URL``/``DB_HOST``).
    """
    if transport is None:
        from streaming.transport.kafka import KafkaTransport

        transport = KafkaTransport(kafka)
    retention_s = horizon_s(security) + _DAY_S
    revocation_log = RevocationLog(
        transport,
        topic=security.revocation_topic,
        retention_ms=int(retention_s * 1000),
        replication_factor=kafka.default_replication_factor,
        topic_config=TopicDefaults.from_settings(kafka).internal_config(),
        max_lag_s=security.revocation_max_lag_s,
    )
    if database is None or not database.configured:
        return SharedRevocationStore(revocation_log)
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(
        database.connection_url, connect_args={"timeout": database.connect_timeout_s}
    )
    return SharedRevocationStore(
        revocation_log, PostgresRevocationStore(engine), on_stop=engine.dispose
    )


__all__ = [
    "RevocationEntry",
    "RevocationLog",
    "SharedRevocationStore",
    "horizon_s",
    "shared_revocations",
]
