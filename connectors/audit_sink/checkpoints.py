# ruff: noqa: S608  # table/schema names are validated SQL identifiers, values are bound
"""Signed checkpoints: made and stored in PostgreSQL, published to Kafka, read back.

:class:`CheckpointStore` signs every chain head into the next row of
``audit_checkpoint``; the same checkpoint also goes to the compacted
``_streaming.audit-checkpoints`` topic. The copy in Kafka is what a database administrator cannot rewrite: verification reads
the newest one back and compares it with the database's checkpoints and chain tails.
Records are keyed by namespace (the audit schema name), so compaction keeps the latest.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from connectors.audit_sink.tables import AuditTables
from streaming.audit.chain import GENESIS_HASH, ChainHead
from streaming.audit.checkpoints import (
    Checkpoint,
    CheckpointSigner,
    SignedCheckpoint,
    checkpoint_digest,
)
from streaming.errors import TopicError
from streaming.transport.base import (
    AdminTransport,
    OutgoingRecord,
    ProducerTransport,
    TopicPartition,
    TopicSpec,
    TransportFactory,
)

log = structlog.get_logger(__name__)

COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}


def checkpoint_to_json(signed: SignedCheckpoint) -> dict[str, Any]:
    """The JSON form used in Kafka and in export bundles."""
    return {
        "checkpoint_id": signed.checkpoint_id,
        "key_id": signed.key_id,
        "body": base64.b64encode(signed.body).decode("ascii"),
        "signature": base64.b64encode(signed.signature).decode("ascii"),
    }


def checkpoint_from_json(obj: Any) -> SignedCheckpoint:
    """Raises ``ValueError``/``KeyError``/``TypeError`` when ``obj`` is not one."""
    return SignedCheckpoint(
        int(obj["checkpoint_id"]),
        base64.b64decode(obj["body"]),
        base64.b64decode(obj["signature"]),
        str(obj["key_id"]),
    )


def encode_checkpoint(signed: SignedCheckpoint) -> bytes:
    return json.dumps(checkpoint_to_json(signed), sort_keys=True).encode()


def decode_checkpoint(data: bytes) -> SignedCheckpoint:
    """Raises ``ValueError``/``KeyError`` when ``data`` is not an encoded checkpoint."""
    return checkpoint_from_json(json.loads(data))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_time(ms: int) -> datetime:
    """A checkpoint's signed ``created_at_ms`` as the ``created_at`` column stores it."""
    return _EPOCH + timedelta(milliseconds=ms)


class CheckpointStore:
    """The ``audit_checkpoint`` table: signs every chain head into the next checkpoint."""

    def __init__(self, tables: AuditTables) -> None:
        self.tables = tables

    async def create(self, signer: CheckpointSigner, namespace: str) -> SignedCheckpoint | None:
        """Sign every chain head into the next checkpoint; ``None`` if nothing moved."""
        async with self.tables.transaction() as conn:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", self.tables.name("checkpoint")
            )
            last = await conn.fetchrow(
                f"SELECT checkpoint_id, body FROM {self.tables.name('audit_checkpoint')} "
                "ORDER BY checkpoint_id DESC LIMIT 1"
            )
            rows = await conn.fetch(
                f"SELECT chain_id, seq, hash, kafka_offset FROM {self.tables.name('chain_head')} "
                "WHERE seq > 0 ORDER BY chain_id"
            )
            heads = tuple(
                ChainHead(r["chain_id"], r["seq"], bytes(r["hash"]), r["kafka_offset"])
                for r in rows
            )
            if not heads:
                return None
            prev_id, prev_digest = 0, GENESIS_HASH
            if last is not None:
                prev_id = last["checkpoint_id"]
                prev_digest = checkpoint_digest(bytes(last["body"]))
                previous = Checkpoint.parse(bytes(last["body"]))
                if {(h.chain_id, h.seq) for h in previous.heads} == {
                    (h.chain_id, h.seq) for h in heads
                }:
                    return None
            now_ms = time.time_ns() // 1_000_000
            checkpoint = Checkpoint(namespace, prev_id + 1, now_ms, prev_digest, heads)
            signed = signer.sign(checkpoint)
            await conn.execute(
                f"INSERT INTO {self.tables.name('audit_checkpoint')} "
                "(checkpoint_id, body, signature, key_id, created_at) "
                "VALUES ($1, $2, $3, $4, $5)",
                signed.checkpoint_id,
                signed.body,
                signed.signature,
                signed.key_id,
                ms_time(now_ms),
            )
        return signed

    async def load(self, *, since_id: int = 0) -> list[SignedCheckpoint]:
        """The stored checkpoints from ``since_id`` on, oldest first."""
        async with self.tables.connection() as conn:
            rows = await conn.fetch(
                "SELECT checkpoint_id, body, signature, key_id FROM "
                f"{self.tables.name('audit_checkpoint')} WHERE checkpoint_id >= $1 "
                "ORDER BY checkpoint_id",
                since_id,
            )
        return [
            SignedCheckpoint(
                r["checkpoint_id"], bytes(r["body"]), bytes(r["signature"]), r["key_id"]
            )
            for r in rows
        ]

    async def times(self) -> dict[int, datetime]:
        """The ``created_at`` column of each checkpoint (verify checks it against the body)."""
        async with self.tables.connection() as conn:
            rows = await conn.fetch(
                f"SELECT checkpoint_id, created_at FROM {self.tables.name('audit_checkpoint')}"
            )
        return {r["checkpoint_id"]: r["created_at"] for r in rows}


async def ensure_checkpoint_topic(admin: AdminTransport, topic: str) -> None:
    await admin.create_topics([TopicSpec(topic, 1, config=COMPACTED)])


class CheckpointPublisher:
    """Publishes each new checkpoint (keyed by namespace) through an idempotent producer."""

    def __init__(self, producer: ProducerTransport, topic: str, namespace: str) -> None:
        self._producer = producer
        self.topic = topic
        self.namespace = namespace

    async def publish(self, signed: SignedCheckpoint) -> None:
        await self._producer.send(
            OutgoingRecord(self.topic, encode_checkpoint(signed), self.namespace.encode())
        )


async def read_latest_checkpoint(
    transport: TransportFactory, topic: str, namespace: str
) -> SignedCheckpoint | None:
    """The highest-numbered checkpoint published for ``namespace`` (``None`` if none)."""
    consumer = transport.consumer(group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        try:
            partitions = await consumer.partitions_for(topic)
        except TopicError:
            return None
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        best: SignedCheckpoint | None = None
        key = namespace.encode()
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batches = await consumer.poll(timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    if record.key == key and record.value is not None:
                        try:
                            signed = decode_checkpoint(record.value)
                        except (ValueError, KeyError, TypeError):
                            log.warning("unreadable checkpoint record", offset=record.offset)
                            continue
                        if best is None or signed.checkpoint_id >= best.checkpoint_id:
                            best = signed
                    if record.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return best
    finally:
        await consumer.stop()


__all__ = [
    "CheckpointPublisher",
    "CheckpointStore",
    "checkpoint_from_json",
    "checkpoint_to_json",
    "decode_checkpoint",
    "encode_checkpoint",
    "ensure_checkpoint_topic",
    "ms_time",
    "read_latest_checkpoint",
]
