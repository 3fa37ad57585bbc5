"""A Kafka Streams-style key-value state store backed by a ``<name>.changelog`` topic.

Handlers keep state in memory; every ``put``/``delete`` is first written to the
compacted changelog (acks=all, idempotent) and only then applied, so what is in memory
is always recoverable. ``start()`` restores the state by reading the changelog to its
high watermark. With ``cache_dir`` the state and the changelog positions are also kept
in a SQLite file, so a restart reads only the changelog records written since the last
:meth:`flush`; a cache that does not fit the log (topic recreated, truncated) is ignored.
Like a Kafka Streams task, one store instance is the only writer of its changelog.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Self

import structlog

from streaming.core.lifecycle import AsyncService
from streaming.core.topics import CHANGELOG_CONFIG, changelog_topic
from streaming.errors import TransportError
from streaming.replay.kv import KeyValueView
from streaming.replay.reading import iter_range
from streaming.transport.base import (
    OutgoingRecord,
    ProducerTransport,
    TopicPartition,
    TopicSpec,
    TransportFactory,
)

log = structlog.get_logger(__name__)


class _DiskCache:
    """SQLite file with the table and the next changelog offset per partition."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS pos (p INTEGER PRIMARY KEY, o INTEGER)")
        self._db.commit()

    def load(self) -> tuple[dict[bytes, bytes], dict[int, int]]:
        data = {bytes(k): bytes(v) for k, v in self._db.execute("SELECT k, v FROM kv")}
        positions = {int(p): int(o) for p, o in self._db.execute("SELECT p, o FROM pos")}
        return data, positions

    def save(self, data: dict[bytes, bytes], positions: dict[int, int]) -> None:
        with self._db:  # one transaction: table and positions always match
            self._db.execute("DELETE FROM kv")
            self._db.executemany("INSERT INTO kv VALUES (?, ?)", data.items())
            self._db.execute("DELETE FROM pos")
            self._db.executemany("INSERT INTO pos VALUES (?, ?)", positions.items())

    def close(self) -> None:
        self._db.close()


class StateStore(KeyValueView, AsyncService):
    """Bytes-to-bytes state restored from and written through ``<name>.changelog``."""

    def __init__(
        self,
        transport: TransportFactory,
        name: str,
        *,
        partitions: int = 1,
        replication_factor: int | None = None,
        cache_dir: Path | str | None = None,
    ) -> None:
        self.transport = transport
        self.name = name
        self.changelog = changelog_topic(name)
        self._partitions = partitions
        self._replication_factor = replication_factor
        self._cache = _DiskCache(Path(cache_dir) / f"{name}.sqlite") if cache_dir else None
        super().__init__()
        self._positions: dict[int, int] = {}
        self._producer: ProducerTransport | None = None
        self.restored_records = 0

    async def start(self) -> Self:
        """Create the changelog if needed and restore the state from it."""
        admin = self.transport.admin()
        await admin.start()
        try:
            await admin.create_topics(
                [
                    TopicSpec(
                        self.changelog,
                        self._partitions,
                        self._replication_factor,
                        dict(CHANGELOG_CONFIG),
                    )
                ]
            )
        finally:
            await admin.stop()
        await self._restore()
        producer = self.transport.producer()
        await producer.start()
        self._producer = producer
        return self

    async def _restore(self) -> None:
        consumer = self.transport.consumer(group_id=None, isolation_level="read_committed")
        await consumer.start()
        try:
            parts = sorted(await consumer.partitions_for(self.changelog))
            tps = [TopicPartition(self.changelog, p) for p in parts]
            begin = await consumer.beginning_offsets(tps)
            end = await consumer.end_offsets(tps)
            data, positions = self._cache.load() if self._cache else ({}, {})
            usable = positions.keys() == set(parts) and all(
                begin[tp] <= positions[tp.partition] <= end[tp] for tp in tps
            )
            if not usable:
                if positions:
                    log.warning("state cache does not match the changelog; full restore")
                data, positions = {}, {p: begin[TopicPartition(self.changelog, p)] for p in parts}
            async for batch in iter_range(
                consumer, {tp: (positions[tp.partition], end[tp]) for tp in tps}, max_records=2000
            ):
                for records in batch.values():
                    for r in records:
                        if r.key is None:
                            continue
                        if r.value is None:
                            data.pop(r.key, None)
                        else:
                            data[r.key] = r.value
                        self.restored_records += 1
            self._data = data
            self._positions = {tp.partition: end[tp] for tp in tps}
        finally:
            await consumer.stop()
        log.info(
            "state store restored",
            store=self.name,
            keys=len(self._data),
            records_read=self.restored_records,
        )

    def _require_producer(self) -> ProducerTransport:
        if self._producer is None:
            raise TransportError(f"state store {self.name!r} is not started; call start() first")
        return self._producer

    async def _write(self, key: bytes, value: bytes | None) -> None:
        meta = await self._require_producer().send(
            OutgoingRecord(self.changelog, value=value, key=key)
        )
        self._positions[meta.partition] = max(
            self._positions.get(meta.partition, 0), meta.offset + 1
        )

    async def put(self, key: bytes, value: bytes) -> None:
        """Changelog first, then memory: state is never ahead of what can be restored."""
        await self._write(key, value)
        self._data[key] = value

    async def delete(self, key: bytes) -> None:
        await self._write(key, None)
        self._data.pop(key, None)

    def flush(self) -> None:
        """Persist the on-disk cache (if any) so the next restore reads less."""
        if self._cache is not None:
            self._cache.save(self._data, self._positions)

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.flush()
            await producer.stop()
        self.flush()
        if self._cache is not None:
            self._cache.close()
            self._cache = None


__all__ = ["CHANGELOG_CONFIG", "StateStore", "changelog_topic"]
