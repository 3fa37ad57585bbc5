"""Where revoked token ids, revoked refresh families and used refresh tokens are kept.

:class:`PostgresRevocationStore` is the durable list and the only place where redeeming
a refresh token is an atomic compare-and-set (``INSERT ... ON CONFLICT DO NOTHING
RETURNING``), so two instances racing on one refresh token cannot both win; expiry is a
plain ``DELETE ... WHERE expires_at < now()``.

Verifiers do not query it per request: revocations reach every process through the
compacted ``_streaming.revocations`` topic (:mod:`streaming.security.revocation_log`),
which also works where no database is configured (a Kafka-only registry).

:class:`InMemoryRevocationStore` has the same semantics for one process and for tests.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    MetaData,
    Table,
    Text,
    and_,
    delete,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from streaming.errors import DatabaseError, DatabaseUnavailableError


class EntryKind(enum.StrEnum):
    TOKEN = "jti"  # noqa: S105 - a revoked token id (a kind, not a secret)
    FAMILY = "family"  # a revoked refresh-token family (every token derived from one login)
    USED = "used"  # a refresh token id that has already been redeemed


@runtime_checkable
class RevocationStore(Protocol):
    """Shared state behind revocation and single-use refresh tokens.

    ``expires_at`` is epoch seconds after which the entry is useless (the token it
    concerns has expired), so :meth:`purge_expired` may drop it.
    """

    async def revoke(self, jti: str, expires_at: float) -> None: ...

    async def revoke_family(self, family_id: str, expires_at: float) -> None: ...

    async def is_revoked(self, jti: str, family_id: str | None = None) -> bool:
        """True if ``jti`` is revoked or ``family_id`` (when given) is revoked."""
        ...

    async def mark_used(self, jti: str, expires_at: float) -> bool:
        """Record a refresh-token redemption; True only for the first caller, atomically."""
        ...

    async def purge_expired(self, now: float | None = None) -> int: ...


class InMemoryRevocationStore:
    """A per-process store; correct for one instance and for tests, not shared."""

    def __init__(self) -> None:
        self._entries: dict[tuple[EntryKind, str], float] = {}
        self._lock = asyncio.Lock()

    async def revoke(self, jti: str, expires_at: float) -> None:
        self._entries[(EntryKind.TOKEN, jti)] = expires_at

    async def revoke_family(self, family_id: str, expires_at: float) -> None:
        self._entries[(EntryKind.FAMILY, family_id)] = expires_at

    async def is_revoked(self, jti: str, family_id: str | None = None) -> bool:
        if (EntryKind.TOKEN, jti) in self._entries:
            return True
        return family_id is not None and (EntryKind.FAMILY, family_id) in self._entries

    async def mark_used(self, jti: str, expires_at: float) -> bool:
        async with self._lock:
            key = (EntryKind.USED, jti)
            if key in self._entries:
                return False
            self._entries[key] = expires_at
            return True

    async def purge_expired(self, now: float | None = None) -> int:
        cutoff = time.time() if now is None else now
        stale = [key for key, expires in self._entries.items() if expires < cutoff]
        for key in stale:
            del self._entries[key]
        return len(stale)


def _ts(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=UTC)


def _table(name: str) -> Table:
    return Table(
        name,
        MetaData(),
        Column("kind", Text, primary_key=True),
        Column("id", Text, primary_key=True),
        Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        CheckConstraint("kind IN ('jti', 'family', 'used')", name=f"{name}_kind_check"),
    )


class PostgresRevocationStore:
    """The shared store: one table, created idempotently by :meth:`ensure_schema`."""

    def __init__(self, engine: AsyncEngine, *, table: str = "security_token_revocations") -> None:
        self._engine = engine
        self._table = _table(table)

    async def ensure_schema(self) -> None:
        """Create the table and its expiry index if missing; safe to run concurrently."""
        lock = select(func.pg_advisory_xact_lock(func.hashtext(self._table.name)))
        try:
            async with self._engine.begin() as conn:
                # Two instances creating the table at once can collide in pg_type: serialise.
                await conn.execute(lock)
                await conn.run_sync(self._table.metadata.create_all, checkfirst=True)
        except (SQLAlchemyError, OSError) as exc:
            raise _translate(exc, "create the revocation table") from exc

    async def _upsert(self, kind: EntryKind, key: str, expires_at: float) -> None:
        stmt = insert(self._table).values(kind=kind.value, id=key, expires_at=_ts(expires_at))
        stmt = stmt.on_conflict_do_update(
            index_elements=["kind", "id"],
            set_={"expires_at": func.greatest(self._table.c.expires_at, stmt.excluded.expires_at)},
        )
        try:
            async with self._engine.begin() as conn:
                await conn.execute(stmt)
        except (SQLAlchemyError, OSError) as exc:
            raise _translate(exc, "record a revocation") from exc

    async def revoke(self, jti: str, expires_at: float) -> None:
        await self._upsert(EntryKind.TOKEN, jti, expires_at)

    async def revoke_family(self, family_id: str, expires_at: float) -> None:
        await self._upsert(EntryKind.FAMILY, family_id, expires_at)

    async def is_revoked(self, jti: str, family_id: str | None = None) -> bool:
        c = self._table.c
        match = and_(c.kind == EntryKind.TOKEN.value, c.id == jti)
        if family_id is not None:
            match = or_(match, and_(c.kind == EntryKind.FAMILY.value, c.id == family_id))
        try:
            async with self._engine.connect() as conn:
                row = (await conn.execute(select(literal(1)).where(match).limit(1))).first()
        except (SQLAlchemyError, OSError) as exc:
            raise _translate(exc, "check the revocation list") from exc
        return row is not None

    async def active_entries(
        self, kinds: Iterable[EntryKind], now: float | None = None
    ) -> list[tuple[EntryKind, str, float]]:
        """Unexpired entries of ``kinds`` as ``(kind, id, expires_at)``, to seed a verifier."""
        c = self._table.c
        cutoff = _ts(time.time() if now is None else now)
        stmt = select(c.kind, c.id, c.expires_at).where(
            c.kind.in_([k.value for k in kinds]), c.expires_at >= cutoff
        )
        try:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        except (SQLAlchemyError, OSError) as exc:
            raise _translate(exc, "read the revocation list") from exc
        return [(EntryKind(kind), ident, expires.timestamp()) for kind, ident, expires in rows]

    async def mark_used(self, jti: str, expires_at: float) -> bool:
        stmt = (
            insert(self._table)
            .values(kind=EntryKind.USED.value, id=jti, expires_at=_ts(expires_at))
            .on_conflict_do_nothing(index_elements=["kind", "id"])
            .returning(self._table.c.id)
        )
        try:
            async with self._engine.begin() as conn:
                row = (await conn.execute(stmt)).first()
        except (SQLAlchemyError, OSError) as exc:
            raise _translate(exc, "redeem a refresh token") from exc
        return row is not None

    async def purge_expired(self, now: float | None = None) -> int:
        cutoff = _ts(time.time() if now is None else now)
        stmt = delete(self._table).where(self._table.c.expires_at < cutoff)
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(stmt)
        except (SQLAlchemyError, OSError) as exc:
            raise _translate(exc, "purge expired revocations") from exc
        return int(result.rowcount or 0)


def _translate(exc: BaseException, doing: str) -> DatabaseError:
    """Map driver/SQLAlchemy failures to our tree; connection loss is retriable."""
    lost = isinstance(exc, OSError | OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)
    )
    if lost:
        return DatabaseUnavailableError(f"could not {doing}: PostgreSQL is unreachable")
    return DatabaseError(f"could not {doing}: {type(exc).__name__}")


__all__ = [
    "EntryKind",
    "InMemoryRevocationStore",
    "PostgresRevocationStore",
    "RevocationStore",
]
