"""The ``_schemas``-topic store, safe with several registry instances on one topic.

Reading: one consumer (``read_committed``, no group) reads the single partition from the
beginning and folds every record into :class:`RegistryState`. The store is ready once it
has read up to the end offset it saw at start.

Writing, and why ids cannot collide: every instance writes through a *transactional*
producer with the same ``transactional_id``. Kafka allows one live producer per
transactional id: initialising a producer bumps the epoch, aborts the previous holder's
open transaction and makes every later send/commit of the previous holder fail. So:

1. On (re)acquiring the producer we commit a NOOP marker record in a transaction and
   wait until our reader has applied it. Anything another instance committed before we
   took over sits at a lower offset and is visible by then (``read_committed`` returns
   records in offset order once their transaction is resolved), so our state is complete.
2. While our commits keep succeeding nobody else can have committed in between (they
   would have had to fence us first, failing our commit), so planning on our own state
   stays correct: the next id really is ``max id + 1``.
3. When a commit fails (we were fenced, or the broker hiccupped) nothing of ours became
   visible; we drop the producer, re-acquire (step 1, which fences the other instance in
   turn) and re-plan against the fresh state. Re-planning makes retries idempotent: a
   schema the other instance registered meanwhile is simply found and its id returned.

No step relies on a timed wait for correctness. The short jittered pause before
re-acquiring after a fence only stops two busy instances from fencing each other in a
tight loop; a write gives up with 50001 after ``max_write_attempts``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TypeVar

import structlog

from streaming.core.backoff import Backoff
from streaming.core.lifecycle import cancel_and_wait
from streaming.core.topics import COMPACTED, SCHEMAS_TOPIC
from streaming.errors import TransportError
from streaming.registry.errors import NotReady, StoreError, StoreTimeout
from streaming.registry.records import NoopKey, StoreRecord, encode
from streaming.registry.state import RegistryState
from streaming.registry.store import Planner
from streaming.transport.base import (
    ConsumerTransport,
    OutgoingRecord,
    ProducerTransport,
    TopicPartition,
    TopicSpec,
    TransportFactory,
)

T = TypeVar("T")
log = structlog.get_logger(__name__)

# liveness only: between reader retries, and after a fence so the instance that fenced
# us can finish its write instead of the two fencing each other in a tight loop
READ_BACKOFF = Backoff(initial_s=0.1, max_s=2.0)
FENCE_BACKOFF = Backoff(initial_s=0.02, max_s=0.2)


class KafkaSchemaStore:
    """Registry state backed by a compacted single-partition Kafka topic."""

    def __init__(
        self,
        transport: TransportFactory,
        *,
        topic: str = SCHEMAS_TOPIC,
        transactional_id: str | None = None,
        replication_factor: int | None = None,
        topic_config: dict[str, str] | None = None,
        poll_timeout_ms: int = 200,
        write_timeout_s: float = 30.0,
        max_write_attempts: int = 25,
    ) -> None:
        self._transport = transport
        self.topic = topic
        self._tp = TopicPartition(topic, 0)
        self.transactional_id = transactional_id or f"schema-registry-writer-{topic}"
        self._replication_factor = replication_factor
        self._topic_config = {**COMPACTED, **(topic_config or {})}
        self._poll_timeout_ms = poll_timeout_ms
        self._write_timeout_s = write_timeout_s
        self._max_attempts = max_write_attempts
        self._state = RegistryState()
        self._consumer: ConsumerTransport | None = None
        self._producer: ProducerTransport | None = None
        self._reader: asyncio.Task[None] | None = None
        self._applied = 0  # next offset the reader will apply
        self._startup_end = 0
        self._ready = asyncio.Event()
        self._progress = asyncio.Condition()
        self._write_lock = asyncio.Lock()
        self._reader_error: BaseException | None = None
        self.fences = 0

    @property
    def state(self) -> RegistryState:
        return self._state

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self._reader_error is None

    @property
    def applied_offset(self) -> int:
        return self._applied

    async def start(self) -> None:
        admin = self._transport.admin()
        await admin.start()
        try:
            await admin.create_topics(
                [TopicSpec(self.topic, 1, self._replication_factor, self._topic_config)]
            )
        finally:
            await admin.stop()
        consumer = self._transport.consumer(
            group_id=None, isolation_level="read_committed", auto_offset_reset="earliest"
        )
        await consumer.start()
        consumer.assign([self._tp])
        await consumer.seek_to_beginning(self._tp)
        self._startup_end = (await consumer.end_offsets([self._tp]))[self._tp]
        self._consumer = consumer
        if self._startup_end == 0:
            self._ready.set()
        self._reader = asyncio.create_task(self._read_loop(), name=f"registry-reader-{self.topic}")
        log.info("registry.store_started", topic=self.topic, end_offset=self._startup_end)

    async def stop(self) -> None:
        await cancel_and_wait(self._reader)
        self._reader = None
        await self._drop_producer()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def wait_ready(self, timeout_s: float) -> None:
        if self._reader_error is not None:
            raise NotReady(f"schema store reader failed: {self._reader_error}")
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        except TimeoutError as exc:
            raise NotReady(
                f"still reading '{self.topic}' ({self._applied}/{self._startup_end} offsets)"
            ) from exc

    # ---- reading ----------------------------------------------------------------------

    async def _read_loop(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        failures = 0
        while True:
            try:
                batches = await consumer.poll(timeout_ms=self._poll_timeout_ms)
                last = -1
                for records in batches.values():
                    for record in records:
                        self._state.apply_raw(record.key, record.value)
                        last = record.offset
                position = await consumer.position(self._tp)
            except TransportError as exc:
                failures += 1
                log.warning("registry.reader_error", error=str(exc), failures=failures)
                if failures >= 20:
                    self._reader_error = exc
                    raise
                await asyncio.sleep(READ_BACKOFF.delay_s(failures))
                continue
            failures = 0
            async with self._progress:
                self._applied = max(self._applied, position, last + 1)
                self._progress.notify_all()
            if not self._ready.is_set() and self._applied >= self._startup_end:
                self._ready.set()
                log.info("registry.store_ready", topic=self.topic, offset=self._applied)

    async def _wait_applied(self, offset: int) -> None:
        """Block until the reader has applied every record below ``offset``."""
        try:
            async with asyncio.timeout(self._write_timeout_s), self._progress:
                await self._progress.wait_for(lambda: self._applied >= offset)
        except TimeoutError as exc:
            raise StoreTimeout(
                f"'{self.topic}' reader did not reach offset {offset} within "
                f"{self._write_timeout_s}s (at {self._applied})"
            ) from exc

    # ---- writing ----------------------------------------------------------------------

    async def _commit(self, records: Sequence[StoreRecord]) -> int:
        """Append ``records`` in one transaction; return the offset after the last one."""
        assert self._producer is not None
        outgoing = []
        for record in records:
            key, value = encode(record)
            outgoing.append(OutgoingRecord(self.topic, value=value, key=key, partition=0))
        # No abort on failure: the caller drops this producer, and the next one's
        # initialisation (same transactional id) aborts whatever is left open.
        await self._producer.begin_transaction()
        metas = await self._producer.send_many(outgoing)
        await self._producer.commit_transaction()
        return max(m.offset for m in metas) + 1

    async def _acquire(self) -> None:
        """Become the single writer (fencing any other) and read everything before us."""
        producer = self._transport.producer(transactional_id=self.transactional_id, linger_ms=0)
        await producer.start()
        self._producer = producer
        try:
            end = await self._commit([StoreRecord(NoopKey(), None)])
            await self._wait_applied(end)
        except BaseException:
            await self._drop_producer()
            raise
        log.info("registry.writer_acquired", topic=self.topic, offset=end)

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except TransportError as exc:
                log.info("registry.writer_stop_failed", error=str(exc))

    async def write(self, planner: Planner[T]) -> T:
        await self.wait_ready(self._write_timeout_s)
        async with self._write_lock:
            last_error: Exception | None = None
            for attempt in range(self._max_attempts):
                try:
                    if self._producer is None:
                        await self._acquire()
                    records, result = await planner(self._state)
                    if not records:
                        return result
                    end = await self._commit(records)
                except TransportError as exc:
                    last_error = exc
                    self.fences += 1
                    log.info("registry.write_retry", attempt=attempt + 1, error=str(exc))
                    await self._drop_producer()
                    await asyncio.sleep(FENCE_BACKOFF.delay_s(attempt + 1))
                    continue
                try:
                    await self._wait_applied(end)
                except StoreTimeout:
                    # our view is behind our own write: never plan on it again
                    await self._drop_producer()
                    raise
                return result
        raise StoreError(
            f"could not write to '{self.topic}' after {self._max_attempts} attempts: {last_error}"
        )


__all__ = ["KafkaSchemaStore"]
