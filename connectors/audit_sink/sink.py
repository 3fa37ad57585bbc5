"""The audit sink loop: Kafka audit topics -> PostgreSQL hash chains, exactly once.

PostgreSQL, not Kafka, holds the truth about progress: on assignment each partition is
paused until its chain head has been read and the consumer seeked past it; each batch is
one transaction that moves the head only from where this sink expected it. Kafka
offsets are committed afterwards purely for lag tools. When PostgreSQL is unreachable
the sink keeps its batch, pauses every partition (still polling, so it stays in the
group) and retries with capped exponential backoff: nothing is skipped or lost.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from opentelemetry.metrics import Meter

from connectors.audit_sink.checkpoints import CheckpointPublisher
from connectors.audit_sink.metrics import SinkMetrics
from connectors.audit_sink.records import RecordPreparer
from connectors.audit_sink.store import AuditStore
from connectors.audit_sink.writer import BatchResult, ChainFencedError, PreparedRecord
from streaming.audit.chain import chain_id_for
from streaming.audit.checkpoints import CheckpointSigner, SignedCheckpoint
from streaming.audit.keys import MacKeyRing
from streaming.core.backoff import Backoff
from streaming.core.heap import tune_heap
from streaming.errors import DatabaseError, DatabaseUnavailableError, StreamingError
from streaming.telemetry import MESSAGING_DESTINATION_NAME, MESSAGING_DESTINATION_PARTITION_ID
from streaming.transport.base import ConsumerTransport, Record, TopicPartition

log = structlog.get_logger(__name__)

_PREPARE_SLICE = 50  # records prepared between two yields to the event loop (~1 ms)


@dataclass(frozen=True, slots=True)
class SinkOptions:
    batch_max_rows: int = 1000
    batch_max_latency_ms: int = 200
    checkpoint_every_rows: int = 5000
    checkpoint_every_s: float = 30.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 5.0
    kafka_commit_interval_s: float = 1.0
    # streaming.core.heap.tune_heap() when run() starts: freeze the startup heap, young
    # collections every 50k net allocations (as EventConsumer's tune_gc_on_start).
    tune_gc_on_start: bool = True


@dataclass(frozen=True, slots=True)
class _InFlight:
    """One batch's partition transactions, started and not yet accounted for."""

    items: list[tuple[TopicPartition, list[PreparedRecord]]]
    task: asyncio.Future[list[BatchResult | BaseException]]


@dataclass(slots=True)
class SinkStats:
    rows: int = 0
    duplicates: int = 0
    redelivered: int = 0
    batches: int = 0
    checkpoints: int = 0
    fenced: int = 0
    database_retries: int = 0


class AuditSink:
    """Consumes audit topics and appends each record to its partition's chain."""

    def __init__(
        self,
        *,
        store: AuditStore,
        consumer: ConsumerTransport,
        preparer: RecordPreparer,
        ring: MacKeyRing,
        topics: Sequence[str],
        signer: CheckpointSigner | None = None,
        publisher: CheckpointPublisher | None = None,
        options: SinkOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
        meter: Meter | None = None,
    ) -> None:
        self.store = store
        self._consumer = consumer
        self._preparer = preparer
        self._ring = ring
        self._topics = list(topics)
        self._signer = signer
        self._publisher = publisher
        self.options = options or SinkOptions()
        self._clock = clock
        self._rng = random.Random()
        self._expected: dict[TopicPartition, int] = {}
        self._unpositioned: set[TopicPartition] = set()
        self._rows_since_checkpoint = 0
        self._last_checkpoint = clock()
        self._uncommitted: dict[TopicPartition, int] = {}
        self._last_kafka_commit = clock()
        self._stop = asyncio.Event()
        self.stats = SinkStats()
        self.last_checkpoint: SignedCheckpoint | None = None
        self._metrics = SinkMetrics.create(meter, self.stats) if meter is not None else None

    @property
    def ring(self) -> MacKeyRing:
        return self._ring

    def rotate_key(self, ring: MacKeyRing) -> None:
        """Use ``ring``'s active key from the next batch on (a seq boundary)."""
        log.info("audit MAC key rotated", key_id=ring.active_key_id)
        self._ring = ring

    def stop(self) -> None:
        self._stop.set()

    # -- rebalance -------------------------------------------------------------------------

    async def _on_assigned(self, tps: Sequence[TopicPartition]) -> None:
        for tp in tps:
            self._unpositioned.add(tp)
            self._expected.pop(tp, None)
        if tps:
            self._consumer.pause(*tps)
        log.info("audit partitions assigned", partitions=[str(t) for t in tps])

    async def _on_revoked(self, tps: Sequence[TopicPartition]) -> None:
        for tp in tps:
            self._unpositioned.discard(tp)
            self._expected.pop(tp, None)
            self._uncommitted.pop(tp, None)
        log.info("audit partitions revoked", partitions=[str(t) for t in tps])

    async def _position(self) -> None:
        """Seek every newly assigned partition to just past its PostgreSQL chain head."""
        if not self._unpositioned:
            return
        tps = sorted(self._unpositioned)
        heads = await self.store.reader.heads([chain_id_for(tp.topic, tp.partition) for tp in tps])
        for tp in tps:
            head = heads.get(chain_id_for(tp.topic, tp.partition))
            if head is not None and head.kafka_offset >= 0:
                self._consumer.seek(tp, head.kafka_offset + 1)
                self._expected[tp] = head.kafka_offset
            else:
                await self._consumer.seek_to_beginning(tp)
                self._expected[tp] = head.kafka_offset if head is not None else -1
            self._unpositioned.discard(tp)
        self._consumer.resume(*tps)

    # -- main loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until :meth:`stop`; a final checkpoint is attempted on the way out.

        Pipelined: while PostgreSQL commits one batch, the next is polled, decoded and
        sealed. Writes stay strictly in order (a batch's transactions start only after
        the previous batch's have committed and moved ``_expected``), so the exactly-once
        and fencing rules are those of the unpipelined loop; a prepared batch whose
        partition was fenced or revoked meanwhile is dropped and re-read from the head.
        """
        self._stop.clear()
        self._consumer.subscribe(
            self._topics, on_assigned=self._on_assigned, on_revoked=self._on_revoked
        )
        if self.options.tune_gc_on_start:
            tune_heap()  # held batches would otherwise drive full collections of the heap
        attempt = 0
        inflight: _InFlight | None = None
        try:
            while not self._stop.is_set():
                if self._unpositioned and inflight is not None:
                    # Read the heads only after our own in-flight write has committed.
                    await self._finish(inflight)
                    inflight = None
                try:
                    await self._position()
                    attempt = 0
                except DatabaseUnavailableError as exc:
                    attempt += 1
                    await self._wait_out(attempt, exc)
                    continue
                batches = await self._collect()
                pending = await self._prepare_all(batches) if batches else {}
                del batches  # the raw records: free them before waiting on PostgreSQL
                if inflight is not None:
                    await self._finish(inflight)
                    inflight = None
                pending = {tp: p for tp, p in pending.items() if self._writable(tp)}
                if pending:
                    inflight = self._start(pending)
                await self._maybe_checkpoint()
            if inflight is not None:
                await self._finish(inflight)
                inflight = None
        finally:
            if inflight is not None:  # cancelled or failed: never leave a write behind
                inflight.task.cancel()
                await asyncio.gather(inflight.task, return_exceptions=True)
        await self._commit_kafka({}, force=True)
        await self._maybe_checkpoint(force=True)

    def _writable(self, tp: TopicPartition) -> bool:
        return tp in self._expected and tp not in self._unpositioned

    async def _collect(self) -> dict[TopicPartition, list[Record]]:
        """Up to ``batch_max_rows`` records, waiting at most ``batch_max_latency_ms``."""
        deadline = self._clock() + self.options.batch_max_latency_ms / 1000
        batches: dict[TopicPartition, list[Record]] = {}
        total = 0
        while total < self.options.batch_max_rows and not self._stop.is_set():
            left_ms = int((deadline - self._clock()) * 1000)
            if left_ms <= 0:
                break
            got = await self._consumer.poll(
                timeout_ms=left_ms, max_records=self.options.batch_max_rows - total
            )
            for tp, records in got.items():
                if self._writable(tp):
                    batches.setdefault(tp, []).extend(records)
                    total += len(records)
        return {tp: recs for tp, recs in batches.items() if self._writable(tp)}

    async def _prepare(self, records: list[Record]) -> list[PreparedRecord]:
        """Decode and seal (PII encryption, canonical bytes) ahead of the transaction.

        Yields to the event loop every :data:`_PREPARE_SLICE` records: this is CPU work,
        and the batch in flight only moves to its next statement (lock, dedup, COPY,
        head update, commit) when the loop gets to read PostgreSQL's answer.
        """
        while True:
            try:
                prepared: list[PreparedRecord] = []
                for start in range(0, len(records), _PREPARE_SLICE):
                    if start:
                        await asyncio.sleep(0)
                    chunk = [
                        await self._preparer.prepare(r)
                        for r in records[start : start + _PREPARE_SLICE]
                    ]
                    self.store.writer.seal(chunk)
                    prepared.extend(chunk)
                return prepared
            except StreamingError as exc:
                if not exc.retriable:
                    raise
                self.stats.database_retries += 1
                await self._wait_out(1, exc)

    async def _prepare_all(
        self, batches: dict[TopicPartition, list[Record]]
    ) -> dict[TopicPartition, list[PreparedRecord]]:
        pending = {tp: await self._prepare(recs) for tp, recs in batches.items()}
        # Preparing may wait out a registry outage, during which a rebalance can take
        # partitions away: their records belong to the new owner now.
        return {tp: p for tp, p in pending.items() if self._writable(tp)}

    async def _write(self, batches: dict[TopicPartition, list[Record]]) -> None:
        """Prepare and write one batch, unpipelined (what :meth:`run` overlaps)."""
        pending = await self._prepare_all(batches)
        if pending:
            await self._finish(self._start(pending))

    def _start(self, pending: dict[TopicPartition, list[PreparedRecord]]) -> _InFlight:
        """Begin one transaction per partition; :meth:`_finish` collects the outcome."""
        items = list(pending.items())
        task = asyncio.ensure_future(
            asyncio.gather(
                *(self._append(tp, prepared) for tp, prepared in items), return_exceptions=True
            )
        )
        return _InFlight(items, task)

    async def _finish(self, inflight: _InFlight) -> None:
        """Account for a started batch; partitions PostgreSQL refused are retried here,
        with nothing else in flight, until they are written, fenced or revoked."""
        pending = dict(inflight.items)
        items, results = inflight.items, await inflight.task
        attempt = 0
        while True:
            done: dict[TopicPartition, int] = {}
            failure: BaseException | None = None
            for (tp, _), result in zip(items, results, strict=True):
                if isinstance(result, BatchResult):
                    self._record_success(tp, result)
                    done[tp] = result.head.kafka_offset + 1
                    del pending[tp]
                elif isinstance(result, ChainFencedError):
                    log.warning("audit chain fenced", chain=result.chain_id, error=str(result))
                    self.stats.fenced += 1
                    self._unpositioned.add(tp)
                    self._expected.pop(tp, None)
                    self._consumer.pause(tp)
                    del pending[tp]
                elif isinstance(result, DatabaseUnavailableError):
                    failure = result
                elif isinstance(result, BaseException):
                    raise result
            await self._commit_kafka(done)
            if not pending:
                return
            attempt += 1
            assert failure is not None
            await self._wait_out(attempt, failure)
            pending = {tp: p for tp, p in pending.items() if self._writable(tp)}
            if self._stop.is_set() or not pending:
                return  # not committed anywhere: re-read after restart (or by the new owner)
            items = list(pending.items())
            results = await asyncio.gather(
                *(self._append(tp, prepared) for tp, prepared in items), return_exceptions=True
            )

    async def _append(self, tp: TopicPartition, prepared: list[PreparedRecord]) -> BatchResult:
        started = time.perf_counter()
        result = await self.store.writer.append(
            tp.topic,
            tp.partition,
            prepared,
            expected_offset=self._expected[tp],
            ring=self._ring,
        )
        if self._metrics is not None:
            self._metrics.batch_duration.record(
                time.perf_counter() - started,
                {
                    MESSAGING_DESTINATION_NAME: tp.topic,
                    MESSAGING_DESTINATION_PARTITION_ID: str(tp.partition),
                },
            )
        return result

    def _record_success(self, tp: TopicPartition, result: BatchResult) -> None:
        if tp in self._expected:  # else revoked or reassigned meanwhile: re-read the head
            self._expected[tp] = result.head.kafka_offset
        self.stats.rows += result.written
        self.stats.duplicates += result.duplicates
        self.stats.redelivered += result.redelivered
        self.stats.batches += 1
        self._rows_since_checkpoint += result.written

    async def _commit_kafka(
        self, offsets: dict[TopicPartition, int], *, force: bool = False
    ) -> None:
        """Only for lag tools: PostgreSQL is the source of truth for positions.

        At most once per ``kafka_commit_interval_s`` (and on the way out): a commit is a
        broker round trip that would otherwise stall every batch.
        """
        self._uncommitted.update(offsets)
        now = self._clock()
        if not force and now - self._last_kafka_commit < self.options.kafka_commit_interval_s:
            return
        owned = {tp: off for tp, off in self._uncommitted.items() if tp in self._expected}
        self._uncommitted.clear()
        self._last_kafka_commit = now
        if not owned:
            return
        try:
            await self._consumer.commit(owned)
        except StreamingError as exc:
            log.info("kafka offset commit skipped", error=str(exc))

    async def _wait_out(self, attempt: int, exc: BaseException) -> None:
        """Back off while staying in the consumer group (every partition paused)."""
        self.stats.database_retries += 1
        backoff = Backoff(self.options.backoff_initial_s, self.options.backoff_max_s)
        delay = backoff.delay_s(attempt, self._rng)
        log.warning(
            "audit sink backing off", attempt=attempt, delay_s=round(delay, 2), error=str(exc)
        )
        assigned = self._consumer.assignment()
        self._consumer.pause(*assigned)
        try:
            await self._consumer.poll(timeout_ms=max(1, int(delay * 1000)))
        finally:
            current = self._consumer.assignment()
            self._consumer.resume(*(current - self._unpositioned))

    # -- checkpoints -------------------------------------------------------------------------

    async def _maybe_checkpoint(self, *, force: bool = False) -> None:
        if self._signer is None:
            return
        due_rows = self._rows_since_checkpoint >= self.options.checkpoint_every_rows
        due_time = (
            self._rows_since_checkpoint > 0
            and self._clock() - self._last_checkpoint >= self.options.checkpoint_every_s
        )
        if not (due_rows or due_time or (force and self._rows_since_checkpoint > 0)):
            return
        await self.checkpoint()

    async def checkpoint(self) -> SignedCheckpoint | None:
        """Sign all chain heads now; publish to Kafka. Failures are logged, not fatal."""
        if self._signer is None:
            return None
        try:
            signed = await self.store.checkpoints.create(self._signer, self.store.schema)
        except DatabaseError as exc:
            log.warning("audit checkpoint postponed", error=str(exc))
            return None
        self._rows_since_checkpoint = 0
        self._last_checkpoint = self._clock()
        if signed is None:
            return None
        self.stats.checkpoints += 1
        self.last_checkpoint = signed
        if self._publisher is not None:
            try:
                await self._publisher.publish(signed)
            except StreamingError as exc:
                log.warning("audit checkpoint not published", error=str(exc))
        log.info("audit checkpoint", checkpoint_id=signed.checkpoint_id)
        return signed


__all__ = ["AuditSink", "SinkOptions", "SinkStats"]
