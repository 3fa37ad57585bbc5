"""The compacted ``_streaming.offset-snapshots`` topic: offsets snapshots and run progress.

One small compacted topic holds three kinds of rows, each keyed by a JSON array so group
names with any character stay unambiguous:

- ``["offsets", group, name]``: an :class:`OffsetSnapshot` (tombstone = deleted);
- ``["replay", replay_id]``: the progress of a range replay (:mod:`.range`);
- ``["redrive", dlq_topic]``: the ledger of a DLQ's redriven offsets (:mod:`.redrive`).

Values are JSON, so ``kafka-console-consumer`` shows them readably.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streaming.core.topics import OFFSET_SNAPSHOTS_CONFIG as SNAPSHOTS_TOPIC_CONFIG
from streaming.core.topics import OFFSET_SNAPSHOTS_TOPIC as SNAPSHOTS_TOPIC
from streaming.replay.errors import ReplayError, SnapshotExistsError, SnapshotNotFoundError
from streaming.replay.table import CompactedTable
from streaming.transport.base import (
    AdminTransport,
    OutgoingRecord,
    TopicPartition,
    TopicSpec,
    TransportFactory,
)


def row_key(*parts: str) -> bytes:
    return json.dumps(list(parts), separators=(",", ":")).encode()


def parse_row_key(key: bytes) -> tuple[str, ...]:
    try:
        parts = json.loads(key)
    except ValueError:
        return ()
    return tuple(str(p) for p in parts) if isinstance(parts, list) else ()


def encode_json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True, slots=True)
class SnapshotPartition:
    """One partition of a snapshot: committed offset, log end, and the time at the offset.

    ``timestamp_ms`` is the timestamp of the record at ``committed`` (the next one the
    group would read), ``None`` when the group was at the log end; it lets a reset fall
    back to ``--to-datetime`` once retention removed the offset itself. A partition the
    group had never committed on has ``was_committed=False`` and its log start offset.
    """

    topic: str
    partition: int
    committed: int
    end: int
    timestamp_ms: int | None
    was_committed: bool = True

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    @property
    def lag(self) -> int:
        return self.end - self.committed


@dataclass(frozen=True, slots=True)
class OffsetSnapshot:
    group: str
    name: str
    created_at_ms: int
    partitions: tuple[SnapshotPartition, ...]
    created_by: str = ""

    @property
    def offsets(self) -> dict[TopicPartition, int]:
        return {p.tp: p.committed for p in self.partitions}

    @property
    def key(self) -> bytes:
        return row_key("offsets", self.group, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "name": self.name,
            "created_at_ms": self.created_at_ms,
            "created_by": self.created_by,
            "partitions": [
                {
                    "topic": p.topic,
                    "partition": p.partition,
                    "committed": p.committed,
                    "end": p.end,
                    "timestamp_ms": p.timestamp_ms,
                    "was_committed": p.was_committed,
                }
                for p in self.partitions
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OffsetSnapshot:
        try:
            return cls(
                group=str(data["group"]),
                name=str(data["name"]),
                created_at_ms=int(data["created_at_ms"]),
                created_by=str(data.get("created_by", "")),
                partitions=tuple(
                    SnapshotPartition(
                        topic=str(p["topic"]),
                        partition=int(p["partition"]),
                        committed=int(p["committed"]),
                        end=int(p["end"]),
                        timestamp_ms=None if p["timestamp_ms"] is None else int(p["timestamp_ms"]),
                        was_committed=bool(p.get("was_committed", True)),
                    )
                    for p in data["partitions"]
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ReplayError(f"snapshot record is malformed: {exc}") from exc


class SnapshotStore:
    """Reads and writes rows of the snapshots topic (creating it, compacted, on first use)."""

    def __init__(
        self,
        transport: TransportFactory,
        *,
        topic: str = SNAPSHOTS_TOPIC,
        replication_factor: int | None = None,
    ) -> None:
        self.transport = transport
        self.topic = topic
        self._replication_factor = replication_factor
        self._ensured = False

    async def ensure_topic(self) -> None:
        if self._ensured:
            return
        admin: AdminTransport = self.transport.admin()
        await admin.start()
        try:
            await admin.create_topics(
                [
                    TopicSpec(
                        self.topic,
                        partitions=1,
                        replication_factor=self._replication_factor,
                        config=dict(SNAPSHOTS_TOPIC_CONFIG),
                    )
                ]
            )
        finally:
            await admin.stop()
        self._ensured = True

    async def rows(self) -> dict[tuple[str, ...], bytes]:
        """Every live row, keyed by its parsed key."""
        await self.ensure_topic()
        table = CompactedTable(self.transport, self.topic)
        await table.start()
        try:
            return {parse_row_key(k): v for k, v in table.snapshot().items()}
        finally:
            await table.stop()

    async def read(self, *key: str) -> bytes | None:
        return (await self.rows()).get(tuple(key))

    async def write(self, key: bytes, value: bytes | None) -> None:
        await self.ensure_topic()
        producer = self.transport.producer()
        await producer.start()
        try:
            await producer.send(OutgoingRecord(self.topic, value=value, key=key))
        finally:
            await producer.stop()

    # -- offsets snapshots
    async def save_snapshot(self, snapshot: OffsetSnapshot) -> None:
        await self.write(snapshot.key, encode_json(snapshot.to_dict()))

    async def list_snapshots(self, group: str | None = None) -> list[OffsetSnapshot]:
        found = [
            OffsetSnapshot.from_dict(json.loads(value))
            for key, value in (await self.rows()).items()
            if len(key) == 3 and key[0] == "offsets" and (group is None or key[1] == group)
        ]
        return sorted(found, key=lambda s: (s.group, s.created_at_ms, s.name))

    async def get_snapshot(self, group: str, name: str) -> OffsetSnapshot:
        raw = await self.read("offsets", group, name)
        if raw is None:
            raise SnapshotNotFoundError(
                f"no offsets snapshot {name!r} for group {group!r}; "
                f"'streaming offsets list --group {group}' shows the existing ones"
            )
        return OffsetSnapshot.from_dict(json.loads(raw))

    async def refuse_existing(self, group: str, name: str) -> None:
        """Raise :class:`SnapshotExistsError` if ``group`` has a snapshot ``name``."""
        raw = await self.read("offsets", group, name)
        if raw is not None:
            created = OffsetSnapshot.from_dict(json.loads(raw)).created_at_ms
            when = datetime.fromtimestamp(created / 1000, UTC).isoformat(timespec="seconds")
            raise SnapshotExistsError(
                f"group {group!r} already has a snapshot {name!r} (created {when}); "
                "choose another --name, or pass --force to replace it"
            )

    async def delete_snapshot(self, group: str, name: str) -> None:
        """Tombstone the snapshot (compaction then removes it for good)."""
        await self.get_snapshot(group, name)
        await self.write(row_key("offsets", group, name), None)


__all__ = [
    "SNAPSHOTS_TOPIC",
    "SNAPSHOTS_TOPIC_CONFIG",
    "OffsetSnapshot",
    "SnapshotPartition",
    "SnapshotStore",
    "encode_json",
    "parse_row_key",
    "row_key",
]
