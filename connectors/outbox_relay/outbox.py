# ruff: noqa: S608  # table/schema names are validated SQL identifiers, values are bound
"""The transactional outbox: events written in the caller's own database transaction.

``OutboxWriter.add`` inserts the serialized event into ``outbox`` through the caller's
SQLAlchemy session or connection, so the business row and the event commit (or roll
back) together. The relay (:mod:`connectors.outbox_relay.relay`) publishes them later.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from streaming.clients.producer import event_headers
from streaming.config import KafkaSettings, SecuritySettings, read_settings
from streaming.core.clock import now_ms
from streaming.db import Database
from streaming.errors import ConfigError
from streaming.events import Event
from streaming.privacy.protect import FieldProtector
from streaming.serde.avro import AvroSerializer
from streaming.serde.context import SerializationContext
from streaming.transport.base import Headers

OUTBOX_DDL = """
CREATE TABLE IF NOT EXISTS {t} (
    id            bigserial   PRIMARY KEY,
    event_id      uuid        NOT NULL UNIQUE,
    topic         text        NOT NULL,
    partition_key bytea,
    event_type    text        NOT NULL,
    payload       bytea,
    headers       jsonb       NOT NULL DEFAULT '[]'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz
)
"""
OUTBOX_INDEX = "CREATE INDEX IF NOT EXISTS {t}_unsent_idx ON {t} (id) WHERE sent_at IS NULL"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,50}$")


def check_table(name: str) -> str:
    if not _IDENT.match(name):
        raise ConfigError([f"outbox table name {name!r} must be a lower-case SQL identifier"])
    return name


async def migrate_outbox(database: Database, table: str = "outbox") -> None:
    """Create the outbox table (idempotent)."""
    check_table(table)
    async with database.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('tradesense.outbox'))"))
        await conn.execute(text(OUTBOX_DDL.format(t=table)))
        await conn.execute(text(OUTBOX_INDEX.format(t=table)))
        await conn.commit()


def encode_headers(headers: Headers) -> str:
    return json.dumps([[k, base64.b64encode(v).decode("ascii")] for k, v in headers])


def decode_headers(value: Any) -> Headers:
    items = json.loads(value) if isinstance(value, str) else value
    return tuple((str(k), base64.b64decode(v)) for k, v in items)


def _default_protector() -> FieldProtector:
    """From ``SECURITY_PII_KEK`` and ``KAFKA_*`` (the subject keys live in Kafka)."""
    security = read_settings(SecuritySettings)
    if security.pii_kek is None:
        return FieldProtector(None)
    from streaming.transport.kafka import KafkaTransport

    return FieldProtector.from_settings(KafkaTransport(read_settings(KafkaSettings)), security)


class OutboxWriter:
    """Adds events to the outbox inside the caller's transaction (never commits itself)."""

    def __init__(
        self,
        serializer: AvroSerializer,
        *,
        table: str = "outbox",
        privacy: FieldProtector | None = None,
    ) -> None:
        self._serializer = serializer
        # The outbox row is the first copy: marked fields are encrypted before it is written.
        self._privacy = privacy or _default_protector()
        self._insert = text(
            f"INSERT INTO {check_table(table)} "
            "(event_id, topic, partition_key, event_type, payload, headers) "
            "VALUES (:event_id, :topic, :key, :event_type, :payload, CAST(:headers AS jsonb))"
        )

    async def add(
        self,
        session: AsyncSession | AsyncConnection,
        topic: str,
        event: Event,
        *,
        key: bytes | None = None,
        headers: Headers = (),
    ) -> uuid.UUID:
        """Serialize ``event`` (marked fields encrypted) and stage it for ``topic``."""
        event = await self._privacy.protect(event)
        all_headers = event_headers(event, now_ms=now_ms(), extra=headers)
        value = await self._serializer.serialize(
            event, SerializationContext(topic, headers=all_headers)
        )
        if key is None:
            partition_key = event.partition_key()
            key = partition_key.encode() if partition_key is not None else None
        await session.execute(
            self._insert,
            {
                "event_id": event.event_id,
                "topic": topic,
                "key": key,
                "event_type": event.type_name(),
                "payload": value,
                "headers": encode_headers(all_headers),
            },
        )
        return event.event_id

    async def close(self) -> None:
        """Stop tailing the subject keys (when this writer encrypts)."""
        await self._privacy.close()


__all__ = ["OutboxWriter", "check_table", "decode_headers", "encode_headers", "migrate_outbox"]
