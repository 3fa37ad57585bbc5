"""DLQ redrive: move records from ``<topic>.<group>.dlq`` back to the source (or any) topic.

Guarantees:

- **At most one active redrive per DLQ.** Every run of one DLQ uses the transactional id
  ``streaming-redrive.<dlq>``; starting a run fences any older one (its next commit fails
  with :class:`ConcurrentRunFencedError` and its open transaction is aborted).
- **Each DLQ record is redriven at most once.** The offsets a run moved are recorded in
  the ledger row ``["redrive", dlq]`` of the compacted snapshots topic, in the same
  transaction as the moved records. A second identical redrive finds them in the ledger
  and is a no-op.
- **Repeat offenders are parked.** A redriven record carries ``x-redrive-id`` and
  ``x-redrive-count``; the count survives the trip back into the DLQ (the retry headers
  keep unknown headers), and a record already redriven ``max_redrives`` times goes to
  ``<topic>.<group>.parking`` instead.

Redriven records lose the ``x-*`` failure headers, so the consumer treats them as a first
attempt; parked records keep them for whoever investigates. Each moved record continues
its own trace (:mod:`streaming.replay.tracing`).
"""

from __future__ import annotations

import bisect
import enum
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.trace import Tracer

from streaming.clients.retry import parse_failure_headers
from streaming.core.clock import now_ms
from streaming.core.headers import (
    FAILURE_HEADERS,
    H_PARKED_AT,
    H_REDRIVE_COUNT,
    H_REDRIVE_ID,
    REDRIVE_HEADERS,
)
from streaming.core.topics import dlq_topic, parking_topic
from streaming.replay.audit import AuditHook, ReplayAuditEvent, current_actor, log_replay_action
from streaming.replay.errors import ReplayError
from streaming.replay.ratelimit import RateLimiter
from streaming.replay.reading import OffsetRange, iter_range, partition_extents
from streaming.replay.snapshots import SnapshotStore, encode_json, row_key
from streaming.replay.tracing import traced_move
from streaming.replay.txn import commit_batch
from streaming.telemetry import INSTRUMENTATION_NAME
from streaming.transport.base import (
    Headers,
    OutgoingRecord,
    ProducerTransport,
    Record,
    TopicPartition,
    TopicSpec,
    TransportFactory,
)

log = structlog.get_logger(__name__)

DEFAULT_MAX_REDRIVES = 3
_KEPT_RUNS = 20


# --------------------------------------------------------------------------- pure core


Intervals = list[tuple[int, int]]


def add_offsets(intervals: Intervals, offsets: Iterable[int]) -> Intervals:
    """Merge ``offsets`` into sorted, disjoint, half-open ``intervals``."""
    points = sorted({*offsets})
    merged: Intervals = []
    for start, end in sorted([*intervals, *((o, o + 1) for o in points)]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def contains(intervals: Intervals, offset: int) -> bool:
    index = bisect.bisect_right(intervals, (offset, float("inf"))) - 1
    return index >= 0 and intervals[index][0] <= offset < intervals[index][1]


@dataclass(frozen=True, slots=True)
class RedriveLedger:
    """Which DLQ offsets were already moved (redriven or parked), and the recent runs."""

    dlq: str
    moved: Mapping[int, Intervals] = field(default_factory=dict)
    runs: tuple[Mapping[str, Any], ...] = ()

    def was_moved(self, partition: int, offset: int) -> bool:
        return contains(list(self.moved.get(partition, [])), offset)

    def with_moved(self, offsets: Mapping[int, Iterable[int]]) -> RedriveLedger:
        moved = {p: list(v) for p, v in self.moved.items()}
        for partition, offs in offsets.items():
            moved[partition] = add_offsets(moved.get(partition, []), offs)
        return RedriveLedger(self.dlq, moved, self.runs)

    def with_run(self, run: Mapping[str, Any]) -> RedriveLedger:
        return RedriveLedger(self.dlq, self.moved, (*self.runs, dict(run))[-_KEPT_RUNS:])

    def to_dict(self) -> dict[str, Any]:
        return {
            "dlq": self.dlq,
            "moved": {str(p): [list(i) for i in v] for p, v in sorted(self.moved.items())},
            "runs": list(self.runs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RedriveLedger:
        return cls(
            dlq=str(data["dlq"]),
            moved={int(p): [(int(a), int(b)) for a, b in v] for p, v in data["moved"].items()},
            runs=tuple(data.get("runs", ())),
        )


@dataclass(frozen=True, slots=True)
class RedriveFilter:
    """Which DLQ records a redrive takes; empty fields match everything.

    ``exception_types`` match the full ``x-exception-type`` or its class name
    (``TimeoutError`` matches ``asyncio.TimeoutError``). The time window applies to
    ``x-failed-at`` (the record timestamp when absent), ``since`` inclusive, ``until``
    exclusive. ``offsets`` limits each DLQ partition to ``[start, end)``.
    """

    exception_types: tuple[str, ...] = ()
    since_ms: int | None = None
    until_ms: int | None = None
    offsets: Mapping[int, OffsetRange] | None = None

    def matches(self, record: Record) -> bool:
        info = parse_failure_headers(record.headers)
        if self.exception_types:
            kind = info.exception_type if info else ""
            short = kind.rsplit(".", 1)[-1]
            if kind not in self.exception_types and short not in self.exception_types:
                return False
        failed_at = info.failed_at_ms if info else record.timestamp_ms
        if self.since_ms is not None and failed_at < self.since_ms:
            return False
        if self.until_ms is not None and failed_at >= self.until_ms:
            return False
        if self.offsets is not None:
            span = self.offsets.get(record.partition)
            if span is None or not span[0] <= record.offset < span[1]:
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "exception_types": list(self.exception_types),
            "since_ms": self.since_ms,
            "until_ms": self.until_ms,
            "offsets": (
                None
                if self.offsets is None
                else {str(p): list(r) for p, r in sorted(self.offsets.items())}
            ),
        }


class Decision(enum.StrEnum):
    REDRIVE = "redrive"
    PARK = "park"
    ALREADY_MOVED = "already-moved"
    FILTERED_OUT = "filtered-out"


def redrive_count(headers: Headers) -> int:
    for key, value in reversed(headers):
        if key == H_REDRIVE_COUNT:
            try:
                return int(value.decode())
            except ValueError:
                return 0
    return 0


def decide(
    record: Record, flt: RedriveFilter, ledger: RedriveLedger, *, max_redrives: int
) -> Decision:
    """What happens to one DLQ record in a redrive (pure)."""
    if ledger.was_moved(record.partition, record.offset):
        return Decision.ALREADY_MOVED
    if not flt.matches(record):
        return Decision.FILTERED_OUT
    if redrive_count(record.headers) >= max_redrives:
        return Decision.PARK
    return Decision.REDRIVE


def redriven_record(record: Record, destination: str, redrive_id: str) -> OutgoingRecord:
    """The record as the source topic gets it back: a fresh first attempt, count + 1."""
    count = redrive_count(record.headers) + 1
    kept = tuple(
        (k, v) for k, v in record.headers if k not in FAILURE_HEADERS and k not in REDRIVE_HEADERS
    )
    headers = (*kept, (H_REDRIVE_ID, redrive_id.encode()), (H_REDRIVE_COUNT, str(count).encode()))
    return OutgoingRecord(destination, record.value, key=record.key, headers=headers)


def parked_record(record: Record, parking: str, redrive_id: str, at_ms: int) -> OutgoingRecord:
    """The record as parked: every diagnostic header kept, plus who parked it and when."""
    kept = tuple((k, v) for k, v in record.headers if k not in (H_REDRIVE_ID, H_PARKED_AT))
    headers = (*kept, (H_REDRIVE_ID, redrive_id.encode()), (H_PARKED_AT, str(at_ms).encode()))
    return OutgoingRecord(parking, record.value, key=record.key, headers=headers)


@dataclass(slots=True)
class RedriveResult:
    """What a redrive did (or, for a dry run, would do)."""

    redrive_id: str
    dlq: str
    destination: str
    parking: str
    dry_run: bool
    ranges: dict[int, OffsetRange] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    by_exception_type: Counter[str] = field(default_factory=Counter)

    @property
    def redriven(self) -> int:
        return self.counts[Decision.REDRIVE]

    @property
    def parked(self) -> int:
        return self.counts[Decision.PARK]

    @property
    def already_moved(self) -> int:
        return self.counts[Decision.ALREADY_MOVED]

    @property
    def noop(self) -> bool:
        return self.redriven == 0 and self.parked == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "redrive_id": self.redrive_id,
            "dlq": self.dlq,
            "destination": self.destination,
            "parking": self.parking,
            "dry_run": self.dry_run,
            "ranges": {str(p): list(r) for p, r in sorted(self.ranges.items())},
            "redriven": self.redriven,
            "parked": self.parked,
            "already_moved": self.already_moved,
            "filtered_out": self.counts[Decision.FILTERED_OUT],
            "by_exception_type": dict(sorted(self.by_exception_type.items())),
        }


# --------------------------------------------------------------------------- I/O


ProgressCallback = Callable[[int, int], None]


class DlqRedriver:
    """Redrives one DLQ of ``topic`` consumed by ``group``."""

    def __init__(
        self,
        transport: TransportFactory,
        topic: str,
        group: str,
        *,
        store: SnapshotStore | None = None,
        audit: AuditHook = log_replay_action,
        max_redrives: int = DEFAULT_MAX_REDRIVES,
        batch_size: int = 500,
        replication_factor: int | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        if max_redrives < 0:
            raise ValueError(f"max_redrives must be >= 0, got {max_redrives}")
        self.transport = transport
        self.topic = topic
        self.group = group
        self.dlq = dlq_topic(topic, group)
        self.parking = parking_topic(topic, group)
        self.store = store or SnapshotStore(transport)
        self._audit = audit
        self.max_redrives = max_redrives
        self._batch_size = batch_size
        self._replication_factor = replication_factor
        self._tracer = tracer or trace.get_tracer(INSTRUMENTATION_NAME)

    @property
    def transactional_id(self) -> str:
        return f"streaming-redrive.{self.dlq}"

    async def ledger(self) -> RedriveLedger:
        raw = await self.store.read("redrive", self.dlq)
        return RedriveLedger.from_dict(json.loads(raw)) if raw else RedriveLedger(self.dlq)

    async def redrive(
        self,
        flt: RedriveFilter | None = None,
        *,
        destination: str | None = None,
        dry_run: bool = True,
        rate: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> RedriveResult:
        """Move matching DLQ records; with ``dry_run`` (the default) only count them."""
        flt = flt or RedriveFilter()
        target = destination or self.topic
        result = RedriveResult(uuid.uuid4().hex, self.dlq, target, self.parking, dry_run)
        producer: ProducerTransport | None = None
        await self.store.ensure_topic()
        if not dry_run:
            await self._ensure_topics(target)
            producer = self.transport.producer(transactional_id=self.transactional_id)
            await producer.start()  # fences an older run of this DLQ first
        try:
            ledger = await self.ledger()
            ranges = await self._ranges(flt)
            result.ranges = {tp.partition: r for tp, r in ranges.items()}
            total = sum(e - s for s, e in ranges.values())
            seen = 0
            limiter = RateLimiter(rate)
            consumer = self.transport.consumer(
                group_id=None, isolation_level="read_committed", max_poll_records=self._batch_size
            )
            await consumer.start()
            try:
                async for batch in iter_range(consumer, ranges, max_records=self._batch_size):
                    records = [r for tp in sorted(batch) for r in batch[tp]]
                    seen += len(records)
                    ledger = await self._handle(records, flt, ledger, result, producer, limiter)
                    if on_progress is not None:
                        on_progress(seen, total)
            finally:
                await consumer.stop()
            if producer is not None:
                await self._finish(producer, ledger, result, flt)
        finally:
            if producer is not None:
                await producer.stop()
        log.info("dlq redrive", **result.to_dict())
        return result

    async def _ensure_topics(self, destination: str) -> None:
        admin = self.transport.admin()
        await admin.start()
        try:
            existing = await admin.list_topics()
            missing = [t for t in (self.dlq, destination) if t not in existing]
            if missing:
                raise ReplayError(
                    f"topic(s) {', '.join(missing)} do not exist; check --topic/--group "
                    "(the DLQ is <topic>.<group>.dlq) and --to"
                )
            if self.parking not in existing:
                count = await admin.partition_count(self.dlq)
                await admin.create_topics(
                    [TopicSpec(self.parking, count, self._replication_factor)]
                )
        finally:
            await admin.stop()

    async def _ranges(self, flt: RedriveFilter) -> dict[TopicPartition, OffsetRange]:
        consumer = self.transport.consumer(group_id=None, isolation_level="read_committed")
        await consumer.start()
        try:
            extents = await partition_extents(consumer, self.dlq)
        finally:
            await consumer.stop()
        out: dict[TopicPartition, OffsetRange] = {}
        for tp, (lo, hi) in extents.items():
            if flt.offsets is not None:
                if tp.partition not in flt.offsets:
                    continue
                lo = max(lo, flt.offsets[tp.partition][0])
                hi = min(hi, flt.offsets[tp.partition][1])
            if hi > lo:
                out[tp] = (lo, hi)
        return out

    async def _handle(
        self,
        records: Sequence[Record],
        flt: RedriveFilter,
        ledger: RedriveLedger,
        result: RedriveResult,
        producer: ProducerTransport | None,
        limiter: RateLimiter,
    ) -> RedriveLedger:
        out: list[OutgoingRecord] = []
        moved: dict[int, list[int]] = {}
        at = now_ms()
        for record in records:
            decision = decide(record, flt, ledger, max_redrives=self.max_redrives)
            result.counts[decision] += 1
            if decision is Decision.REDRIVE:
                moved_record = redriven_record(record, result.destination, result.redrive_id)
            elif decision is Decision.PARK:
                moved_record = parked_record(record, self.parking, result.redrive_id, at)
            else:
                continue
            if producer is not None:  # the record's trace goes on through this run
                moved_record = traced_move(
                    self._tracer,
                    record,
                    moved_record,
                    operation="redrive",
                    run_id=result.redrive_id,
                )
            out.append(moved_record)
            info = parse_failure_headers(record.headers)
            result.by_exception_type[info.exception_type if info else "(none)"] += 1
            moved.setdefault(record.partition, []).append(record.offset)
        if producer is None or not out:
            return ledger
        await limiter.acquire(len(out))
        updated = ledger.with_moved(moved)
        row = OutgoingRecord(
            self.store.topic, encode_json(updated.to_dict()), key=row_key("redrive", self.dlq)
        )
        await commit_batch(producer, [*out, row], who=f"redrive of {self.dlq}")
        return updated

    async def _finish(
        self,
        producer: ProducerTransport,
        ledger: RedriveLedger,
        result: RedriveResult,
        flt: RedriveFilter,
    ) -> None:
        actor = current_actor()
        run = {
            "redrive_id": result.redrive_id,
            "at_ms": now_ms(),
            "actor": actor,
            "destination": result.destination,
            "filter": flt.to_dict(),
            "redriven": result.redriven,
            "parked": result.parked,
        }
        if not result.noop:
            final = ledger.with_run(run)
            row = OutgoingRecord(
                self.store.topic, encode_json(final.to_dict()), key=row_key("redrive", self.dlq)
            )
            await commit_batch(producer, [row], who=f"redrive of {self.dlq}")
        await self._audit(
            ReplayAuditEvent(
                event_type="DLQ_REDRIVE",
                action="dlq.redrive",
                actor=actor,
                resource_type="topic",
                resource_id=self.dlq,
                details={
                    "redrive_id": result.redrive_id,
                    "destination": result.destination,
                    "ranges": json.dumps(result.to_dict()["ranges"]),
                    "filter": json.dumps(flt.to_dict()),
                    "redriven": str(result.redriven),
                    "parked": str(result.parked),
                    "already_moved": str(result.already_moved),
                },
            )
        )


__all__ = [
    "DEFAULT_MAX_REDRIVES",
    "H_PARKED_AT",
    "H_REDRIVE_COUNT",
    "H_REDRIVE_ID",
    "Decision",
    "DlqRedriver",
    "RedriveFilter",
    "RedriveLedger",
    "RedriveResult",
    "add_offsets",
    "contains",
    "decide",
    "parked_record",
    "redrive_count",
    "redriven_record",
]
