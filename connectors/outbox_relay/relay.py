"""The outbox relay: unsent outbox rows -> Kafka (idempotent producer), then marked sent.

Each round locks a batch with ``FOR UPDATE SKIP LOCKED`` (so several relays share the
work), publishes it in id order, marks it sent and commits. A crash after publishing
but before the commit leaves the rows unsent: they are published again, as duplicates
carrying the same ``event-id`` header, and never lost. A row is held back while an
earlier unsent row with the same key is locked by another relay, which keeps per-key
order across relays.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy import text

from connectors.outbox_relay.outbox import check_table, decode_headers
from streaming.db import Database
from streaming.errors import DatabaseUnavailableError, StreamingError
from streaming.telemetry import count_messages, global_instruments
from streaming.transport.base import OutgoingRecord, ProducerTransport

log = structlog.get_logger(__name__)

_CLAIM = """
    WITH batch AS (
        SELECT id FROM {t} WHERE sent_at IS NULL
        ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
    )
    SELECT o.id, o.topic, o.partition_key, o.payload, o.headers
    FROM {t} o JOIN batch b ON o.id = b.id
    WHERE o.partition_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM {t} e
        WHERE e.partition_key = o.partition_key AND e.sent_at IS NULL AND e.id < o.id
          AND e.id NOT IN (SELECT id FROM batch)
    )
    ORDER BY o.id
"""
_MARK = "UPDATE {t} SET sent_at = now() WHERE id = ANY(CAST(:ids AS bigint[]))"

AfterPublish = Callable[[Sequence[int]], Awaitable[None]]


@dataclass(slots=True)
class RelayStats:
    published: int = 0
    rounds: int = 0


class OutboxRelay:
    """Moves outbox rows to Kafka; run several for availability."""

    def __init__(
        self,
        database: Database,
        producer: ProducerTransport,
        *,
        batch_size: int = 200,
        idle_wait_s: float = 0.2,
        after_publish: AfterPublish | None = None,
        table: str = "outbox",
    ) -> None:
        self._claim = text(_CLAIM.format(t=check_table(table)))
        self._mark = text(_MARK.format(t=table))
        self._database = database
        self._producer = producer
        self.batch_size = batch_size
        self.idle_wait_s = idle_wait_s
        self._after_publish = after_publish
        self._stop = asyncio.Event()
        self.stats = RelayStats()
        self._sent = global_instruments().sent

    def stop(self) -> None:
        self._stop.set()

    async def relay_once(self) -> int:
        """Publish and mark one batch; returns how many rows were published."""
        async with self._database.connect() as conn, conn.begin():
            rows = (await conn.execute(self._claim, {"limit": self.batch_size})).all()
            if not rows:
                return 0
            records = [
                OutgoingRecord(
                    topic=r.topic,
                    value=bytes(r.payload) if r.payload is not None else None,
                    key=bytes(r.partition_key) if r.partition_key is not None else None,
                    headers=decode_headers(r.headers),
                )
                for r in rows
            ]
            try:
                await self._producer.send_many(records)
            except StreamingError as exc:
                count_messages(self._sent, (r.topic for r in records), operation="send", error=exc)
                raise
            count_messages(self._sent, (r.topic for r in records), operation="send")
            ids = [int(r.id) for r in rows]
            if self._after_publish is not None:
                await self._after_publish(ids)
            await conn.execute(self._mark, {"ids": ids})
        self.stats.published += len(rows)
        self.stats.rounds += 1
        return len(rows)

    async def run(self) -> None:
        """Relay until :meth:`stop`; waits ``idle_wait_s`` when the outbox is empty."""
        while not self._stop.is_set():
            try:
                sent = await self.relay_once()
            except (DatabaseUnavailableError, StreamingError) as exc:
                if not exc.retriable:
                    raise
                log.warning("outbox relay retrying", error=str(exc))
                sent = 0
            if sent == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=self.idle_wait_s)


__all__ = ["AfterPublish", "OutboxRelay", "RelayStats"]
