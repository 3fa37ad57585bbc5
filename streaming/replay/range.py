"""Range replay: re-publish part of a topic into a target topic, or through a handler.

Exactly once per record on resume (target mode): every batch is written by a
transactional producer (``transactional.id = streaming-replay.<replay_id>``) in the same
transaction as the progress row ``["replay", replay_id]`` in the compacted snapshots
topic. Output and progress therefore commit or abort together. A resumed run starts the
same transactional id first, which fences the old producer and aborts its open
transaction, then reads the progress with ``read_committed`` and continues from there:
every record of the range is committed to the target exactly once (consumers of the
target should read with ``isolation.level=read_committed``, as for any transactional
topic). The range itself is fixed at the first run and stored with the progress, so
``latest`` means the same offsets after a resume.

Handler mode calls ``async (Record) -> None`` per record in order and stores progress
after each batch: at-least-once (a resumed run repeats at most the interrupted batch).

Why it is long (~500 lines, ``RangeReplayer`` ~300): one replay is one loop (read, write, record progress,
resume) in two delivery modes; its progress record and the range check are the only other
parts, and they are kept beside the loop they serve (bounds are :mod:`.bounds`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import structlog

from streaming.core.clock import now_ms
from streaming.core.headers import H_REPLAY_ID, H_REPLAY_ORIGIN, REPLAY_HEADERS
from streaming.errors import TopicError
from streaming.replay.audit import AuditHook, ReplayAuditEvent, current_actor, log_replay_action
from streaming.replay.bounds import Bound, BoundKind, resolve_bound
from streaming.replay.errors import (
    IncompatibleRangeError,
    ReplayError,
)
from streaming.replay.ratelimit import RateLimiter
from streaming.replay.reading import OffsetRange, iter_range, partition_extents
from streaming.replay.schemacheck import schema_ids, unreadable_ids
from streaming.replay.snapshots import SnapshotStore, encode_json, row_key
from streaming.replay.txn import commit_batch
from streaming.serde.client import SchemaRegistry
from streaming.serde.schema import Schema
from streaming.transport.base import (
    ConsumerTransport,
    OutgoingRecord,
    ProducerTransport,
    Record,
    TopicPartition,
    TopicSpec,
    TransportFactory,
)

log = structlog.get_logger(__name__)


Handler = Callable[[Record], Awaitable[None]]
ProgressCallback = Callable[[int, int], None]


def derive_replay_id(
    source: str,
    destination: str,
    start: Bound,
    end: Bound,
    partitions: Sequence[int] | None = None,
) -> str:
    """The default replay id: the same source, destination and range give the same id, so
    running the same replay again resumes or finds it done instead of writing it twice."""
    parts = sorted(partitions) if partitions is not None else None
    text = json.dumps([source, destination, start.describe(), end.describe(), parts])
    return "r-" + hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class ReplayProgress:
    """The progress row of a replay: fixed range, next offset per partition, counters."""

    replay_id: str
    source: str
    target: str
    ranges: Mapping[int, OffsetRange]
    next_offsets: Mapping[int, int]
    written: int = 0
    done: bool = False
    started_at_ms: int = 0
    actor: str = ""

    @property
    def remaining(self) -> dict[TopicPartition, OffsetRange]:
        return {
            TopicPartition(self.source, p): (self.next_offsets.get(p, start), end)
            for p, (start, end) in self.ranges.items()
            if self.next_offsets.get(p, start) < end
        }

    @property
    def total(self) -> int:
        """Offsets spanned by the range (an upper bound on records: compaction leaves gaps)."""
        return sum(end - start for start, end in self.ranges.values())

    @property
    def covered(self) -> int:
        return sum(
            self.next_offsets.get(p, start) - start for p, (start, _end) in self.ranges.items()
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "replay_id": self.replay_id,
            "source": self.source,
            "target": self.target,
            "ranges": {str(p): list(r) for p, r in sorted(self.ranges.items())},
            "next_offsets": {str(p): o for p, o in sorted(self.next_offsets.items())},
            "written": self.written,
            "done": self.done,
            "started_at_ms": self.started_at_ms,
            "actor": self.actor,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplayProgress:
        return cls(
            replay_id=str(data["replay_id"]),
            source=str(data["source"]),
            target=str(data["target"]),
            ranges={int(p): (int(r[0]), int(r[1])) for p, r in data["ranges"].items()},
            next_offsets={int(p): int(o) for p, o in data["next_offsets"].items()},
            written=int(data["written"]),
            done=bool(data["done"]),
            started_at_ms=int(data.get("started_at_ms", 0)),
            actor=str(data.get("actor", "")),
        )


@dataclass(frozen=True, slots=True)
class ReplayResult:
    replay_id: str
    source: str
    target: str
    written: int
    total: int
    resumed: bool
    already_done: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "replay_id": self.replay_id,
            "source": self.source,
            "target": self.target,
            "written": self.written,
            "total": self.total,
            "resumed": self.resumed,
            "already_done": self.already_done,
        }


def replay_headers(record: Record, replay_id: str) -> tuple[tuple[str, bytes], ...]:
    """The record's headers exactly, plus ``x-replay-id`` and ``x-replay-origin``."""
    origin = f"{record.topic}/{record.partition}/{record.offset}".encode()
    return (*record.headers, (H_REPLAY_ID, replay_id.encode()), (H_REPLAY_ORIGIN, origin))


def _handler_target(handler: Handler) -> str:
    return "handler:" + getattr(handler, "__qualname__", type(handler).__name__)


class RangeReplayer:
    """Replays offset ranges of one topic; see the module docstring for the guarantees."""

    def __init__(
        self,
        transport: TransportFactory,
        *,
        store: SnapshotStore | None = None,
        registry: SchemaRegistry | None = None,
        audit: AuditHook = log_replay_action,
        batch_size: int = 500,
    ) -> None:
        self.transport = transport
        self.store = store or SnapshotStore(transport)
        self._registry = registry
        self._audit = audit
        self._batch_size = batch_size

    async def resolve(
        self, source: str, start: Bound, end: Bound, *, partitions: Sequence[int] | None = None
    ) -> dict[int, OffsetRange]:
        """Per-partition ``(start, end)`` offsets for the bounds, as of now."""
        consumer = self.transport.consumer(group_id=None, isolation_level="read_committed")
        await consumer.start()
        try:
            extents = await partition_extents(consumer, source, partitions or None)
            tps = list(extents)
            lookups: list[dict[TopicPartition, int | None]] = []
            for bound in (start, end):
                lookups.append(
                    await consumer.offsets_for_times(dict.fromkeys(tps, bound.time_ms))
                    if bound.kind is BoundKind.TIME
                    else {}
                )
        finally:
            await consumer.stop()
        out: dict[int, OffsetRange] = {}
        for tp, (b, e) in extents.items():
            lo = resolve_bound(start, tp.partition, b, e, lookups[0].get(tp), missing=b)
            hi = resolve_bound(end, tp.partition, b, e, lookups[1].get(tp), missing=e)
            out[tp.partition] = (lo, max(lo, hi))
        return out

    async def check_schemas(
        self, source: str, ranges: Mapping[int, OffsetRange], reader: Schema
    ) -> None:
        """Refuse (``IncompatibleRangeError``) unless ``reader`` reads every writer id in range."""
        if self._registry is None:
            raise ReplayError("a schema check needs a schema registry client")
        ids: set[int] = set()
        unframed = 0
        consumer = self.transport.consumer(group_id=None, isolation_level="read_committed")
        await consumer.start()
        try:
            spans = {TopicPartition(source, p): r for p, r in ranges.items()}
            async for batch in iter_range(consumer, spans, max_records=2000):
                for records in batch.values():
                    found, bad = schema_ids(records)
                    ids |= found
                    unframed += bad
        finally:
            await consumer.stop()
        offending = await unreadable_ids(self._registry, reader, ids)
        if offending or unframed:
            raise IncompatibleRangeError(offending, unframed=unframed)

    async def replay(
        self,
        source: str,
        *,
        target: str | None = None,
        handler: Handler | None = None,
        start: Bound | None = None,
        end: Bound | None = None,
        partitions: Sequence[int] | None = None,
        replay_id: str | None = None,
        rate: float | None = None,
        reader_schema: Schema | None = None,
        preserve_partitions: bool = True,
        on_progress: ProgressCallback | None = None,
    ) -> ReplayResult:
        """Replay ``source`` between ``start`` (default earliest) and ``end`` (default latest).

        Exactly one of ``target`` and ``handler``. Passing the ``replay_id`` of an
        interrupted run resumes it; of a finished run, does nothing. Without one, the id
        is derived from source, destination and range (:func:`derive_replay_id`): the
        same replay run twice writes its range once.
        """
        if (target is None) == (handler is None):
            raise ReplayError("give exactly one of a target topic or a handler")
        destination = target if target is not None else _handler_target(handler)  # type: ignore[arg-type]
        replay_id = replay_id or derive_replay_id(
            source, destination, start or Bound.earliest(), end or Bound.latest(), partitions
        )
        producer: ProducerTransport | None = None
        if target is not None:
            await self.store.ensure_topic()
            # Starting the transactional id first fences an older run and aborts its open
            # transaction, so the progress read below is final.
            producer = self.transport.producer(transactional_id=f"streaming-replay.{replay_id}")
            await producer.start()
        try:
            progress, resumed = await self._load_or_start(
                replay_id, source, destination, start, end, partitions
            )
            if progress.done:
                return self._result(progress, resumed=True, already_done=True)
            if reader_schema is not None and not resumed:
                await self.check_schemas(source, progress.ranges, reader_schema)
            if not resumed:
                await self._audit(
                    ReplayAuditEvent(
                        event_type="REPLAY_STARTED",
                        action="replay.start",
                        actor=progress.actor,
                        resource_type="topic",
                        resource_id=source,
                        details={
                            "replay_id": replay_id,
                            "target": destination,
                            "ranges": json.dumps(progress.to_dict()["ranges"]),
                        },
                    )
                )
            if producer is not None and target is not None:
                mapper = await self._partition_mapper(source, target, preserve_partitions)
                progress = await self._to_topic(
                    producer, progress, target, mapper, RateLimiter(rate), on_progress
                )
            else:
                assert handler is not None
                progress = await self._to_handler(progress, handler, RateLimiter(rate), on_progress)
            return self._result(progress, resumed=resumed, already_done=False)
        finally:
            if producer is not None:
                await producer.stop()

    def _result(self, p: ReplayProgress, *, resumed: bool, already_done: bool) -> ReplayResult:
        return ReplayResult(
            p.replay_id, p.source, p.target, p.written, p.total, resumed, already_done
        )

    async def progress(self, replay_id: str) -> ReplayProgress | None:
        raw = await self.store.read("replay", replay_id)
        return ReplayProgress.from_dict(json.loads(raw)) if raw is not None else None

    async def _load_or_start(
        self,
        replay_id: str,
        source: str,
        destination: str,
        start: Bound | None,
        end: Bound | None,
        partitions: Sequence[int] | None,
    ) -> tuple[ReplayProgress, bool]:
        existing = await self.progress(replay_id)
        if existing is not None:
            if (existing.source, existing.target) != (source, destination):
                raise ReplayError(
                    f"replay id {replay_id!r} belongs to a replay of {existing.source} -> "
                    f"{existing.target}; use a new --replay-id for {source} -> {destination}"
                )
            log.info("resuming replay", replay_id=replay_id, covered=existing.covered)
            return existing, True
        ranges = await self.resolve(
            source, start or Bound.earliest(), end or Bound.latest(), partitions=partitions
        )
        fresh = ReplayProgress(
            replay_id=replay_id,
            source=source,
            target=destination,
            ranges=ranges,
            next_offsets={p: r[0] for p, r in ranges.items()},
            started_at_ms=now_ms(),
            actor=current_actor(),
        )
        return fresh, False

    async def _partition_mapper(
        self, source: str, target: str, preserve: bool
    ) -> Callable[[int], int | None]:
        admin = self.transport.admin()
        await admin.start()
        try:
            if target not in await admin.list_topics():
                raise TopicError(
                    f"replay target {target!r} does not exist; create it first "
                    "(or pass --create-target)"
                )
            source_count = await admin.partition_count(source)
            target_count = await admin.partition_count(target)
        finally:
            await admin.stop()
        if preserve and target_count >= source_count:
            return lambda p: p
        return lambda p: None  # the key decides, as it did for the original producer

    async def _stream(
        self, progress: ReplayProgress, limiter: RateLimiter
    ) -> AsyncGenerator[list[Record], None]:
        """Batches of the remaining range, each in per-partition offset order."""
        consumer: ConsumerTransport = self.transport.consumer(
            group_id=None, isolation_level="read_committed", max_poll_records=self._batch_size
        )
        await consumer.start()
        try:
            async for batch in iter_range(
                consumer, progress.remaining, max_records=self._batch_size
            ):
                records = [r for tp in sorted(batch) for r in batch[tp]]
                await limiter.acquire(len(records))
                yield records
        finally:
            await consumer.stop()

    @staticmethod
    def _advance(progress: ReplayProgress, records: Sequence[Record]) -> ReplayProgress:
        nxt = dict(progress.next_offsets)
        for r in records:
            nxt[r.partition] = max(nxt.get(r.partition, 0), r.offset + 1)
        return replace(progress, next_offsets=nxt, written=progress.written + len(records))

    async def _to_topic(
        self,
        producer: ProducerTransport,
        progress: ReplayProgress,
        target: str,
        mapper: Callable[[int], int | None],
        limiter: RateLimiter,
        on_progress: ProgressCallback | None,
    ) -> ReplayProgress:
        """Each batch and its progress row in one transaction."""
        key = row_key("replay", progress.replay_id)
        who = f"replay {progress.replay_id}"

        async def deliver(records: Sequence[Record], nxt: ReplayProgress) -> None:
            out = [
                OutgoingRecord(
                    topic=target,
                    value=r.value,
                    key=r.key,
                    headers=replay_headers(r, progress.replay_id),
                    partition=mapper(r.partition),
                    timestamp_ms=r.timestamp_ms,
                )
                for r in records
            ]
            row = OutgoingRecord(self.store.topic, encode_json(nxt.to_dict()), key=key)
            await commit_batch(producer, [*out, row], who=who)

        async def record(done: ReplayProgress) -> None:
            row = OutgoingRecord(self.store.topic, encode_json(done.to_dict()), key=key)
            await commit_batch(producer, [row], who=who)

        done = await self._drive(progress, limiter, on_progress, deliver, record)
        log.info("replay finished", replay_id=done.replay_id, written=done.written)
        return done

    async def _to_handler(
        self,
        progress: ReplayProgress,
        handler: Handler,
        limiter: RateLimiter,
        on_progress: ProgressCallback | None,
    ) -> ReplayProgress:
        """Each record through ``handler``, then the batch's progress row (at-least-once)."""
        key = row_key("replay", progress.replay_id)

        async def deliver(records: Sequence[Record], nxt: ReplayProgress) -> None:
            for r in records:
                await handler(r)
            await self.store.write(key, encode_json(nxt.to_dict()))

        async def record(done: ReplayProgress) -> None:
            await self.store.write(key, encode_json(done.to_dict()))

        return await self._drive(progress, limiter, on_progress, deliver, record)

    async def _drive(
        self,
        progress: ReplayProgress,
        limiter: RateLimiter,
        on_progress: ProgressCallback | None,
        deliver: Callable[[Sequence[Record], ReplayProgress], Awaitable[None]],
        record: Callable[[ReplayProgress], Awaitable[None]],
    ) -> ReplayProgress:
        """The one loop of both modes: read the rest of the range batch by batch, hand each
        batch with the progress it completes to ``deliver``, then ``record`` it done."""
        stream = self._stream(progress, limiter)
        try:
            async for records in stream:
                nxt = self._advance(progress, records)
                await deliver(records, nxt)
                progress = nxt
                if on_progress is not None:
                    on_progress(progress.covered, progress.total)
        finally:
            await stream.aclose()
        done = replace(
            progress, done=True, next_offsets={p: r[1] for p, r in progress.ranges.items()}
        )
        await record(done)
        if on_progress is not None:
            on_progress(done.total, done.total)
        return done


async def create_like(
    transport: TransportFactory, source: str, target: str, *, replication_factor: int | None = None
) -> None:
    """Create ``target`` with the partition count of ``source`` (no-op if it exists)."""
    admin = transport.admin()
    await admin.start()
    try:
        count = await admin.partition_count(source)
        await admin.create_topics([TopicSpec(target, count, replication_factor)])
    finally:
        await admin.stop()


__all__ = [
    "H_REPLAY_ID",
    "H_REPLAY_ORIGIN",
    "REPLAY_HEADERS",
    "Bound",
    "BoundKind",
    "Handler",
    "RangeReplayer",
    "ReplayProgress",
    "ReplayResult",
    "create_like",
    "derive_replay_id",
    "replay_headers",
    "resolve_bound",
]
