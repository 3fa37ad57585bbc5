"""Signed checkpoints in the compacted ``_streaming.audit-checkpoints`` topic.

The copy in Kafka is what a database administrator cannot rewrite: verification reads
the newest one back and compares it with the database's checkpoints and chain tails.
Records are keyed by namespace (the audit schema name), so compaction keeps the latest.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import structlog

from streaming.audit_chain import SignedCheckpoint
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
    "checkpoint_from_json",
    "checkpoint_to_json",
    "decode_checkpoint",
    "encode_checkpoint",
    "ensure_checkpoint_topic",
    "read_latest_checkpoint",
]
