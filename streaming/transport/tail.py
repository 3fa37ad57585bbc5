"""A one-partition compacted topic tailed into memory, with a bound on how stale it is.

Shared by every "everyone must see this within N seconds" list the package keeps in
Kafka: token revocations (:mod:`streaming.security.revocation_log`) and subject data
keys (:mod:`streaming.privacy.keylog`). The tail reads from the beginning, then
continuously; each time it has read up to the end offset it asked for, it records when
it asked. A reader whose last confirmation is older than ``max_lag_s`` must not trust
its copy (:meth:`TailedTopic.is_current`), which is what turns "eventually" into a
documented bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping

import structlog

from streaming.core.backoff import Backoff
from streaming.core.lifecycle import cancel_and_wait
from streaming.errors import TransportError
from streaming.transport.base import (
    ConsumerTransport,
    OutgoingRecord,
    ProducerTransport,
    Record,
    RecordMetadata,
    TopicPartition,
    TopicSpec,
    TransportFactory,
)

log = structlog.get_logger(__name__)

_TAIL_BACKOFF = Backoff(initial_s=0.1, max_s=1.0)


class TailedTopic:
    """Tails partition 0 of ``topic`` into ``apply``; publishes with acks=all.

    ``unavailable(message)`` builds the caller's typed error for a tail that cannot be
    confirmed current in time; ``on_round`` runs after each round (housekeeping).
    """

    def __init__(
        self,
        transport: TransportFactory,
        *,
        topic: str,
        apply: Callable[[Record], None],
        unavailable: Callable[[str], Exception],
        on_round: Callable[[], None] | None = None,
        config: Mapping[str, str],
        replication_factor: int | None = None,
        max_lag_s: float = 2.0,
        poll_timeout_ms: int = 200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self.topic = topic
        self._tp = TopicPartition(topic, 0)
        self._apply_record = apply
        self._unavailable = unavailable
        self._on_round = on_round
        self._config = dict(config)
        self._replication_factor = replication_factor
        self.max_lag_s = max_lag_s
        self._poll_timeout_ms = poll_timeout_ms
        self._clock = clock
        self._consumer: ConsumerTransport | None = None
        self._producer: ProducerTransport | None = None
        self._reader: asyncio.Task[None] | None = None
        self._topic_ready = False
        self._stopping = False
        self._current_at: float | None = None  # clock() when the tail was last known current
        self._round = 0  # rounds started (each asks for the end offset once)
        self._confirmed_round = 0  # the last round that read up to the end it asked for
        self._confirmed = asyncio.Condition()

    @property
    def started(self) -> bool:
        return self._reader is not None

    @property
    def current_at(self) -> float | None:
        return self._current_at

    async def ensure_topic(self) -> None:
        if self._topic_ready:
            return
        spec = TopicSpec(self.topic, 1, self._replication_factor, self._config)
        admin = self._transport.admin()
        await admin.start()
        try:
            await admin.create_topics([spec])
        finally:
            await admin.stop()
        self._topic_ready = True

    async def start(self) -> None:
        """Start tailing from the beginning (the copy is not current until it caught up)."""
        if self._reader is not None:
            return
        await self.ensure_topic()
        consumer = self._transport.consumer(group_id=None, auto_offset_reset="earliest")
        await consumer.start()
        consumer.assign([self._tp])
        await consumer.seek_to_beginning(self._tp)
        self._consumer = consumer
        self._stopping = False
        self._reader = asyncio.create_task(self._tail(consumer), name=f"tail-{self.topic}")

    async def wait_current(self, timeout_s: float) -> None:
        """Block until the tail has read everything published before this call (a round
        that asked for the end offset after this call has reached it)."""
        await self._wait_confirmed_after(self._round, timeout_s)

    async def wait_until_current(self, timeout_s: float) -> None:
        """Block until :meth:`is_current` holds (at once when it already does)."""
        if not self.is_current():
            await self.wait_current(timeout_s)

    async def _wait_confirmed_after(self, round_: int, timeout_s: float) -> None:
        def confirmed() -> bool:
            return self._confirmed_round > round_

        try:
            async with asyncio.timeout(timeout_s), self._confirmed:
                await self._confirmed.wait_for(confirmed)
        except TimeoutError as exc:
            raise self._unavailable(
                f"could not read '{self.topic}' to its end within {timeout_s}s; is Kafka reachable?"
            ) from exc

    def is_current(self) -> bool:
        """Whether the tail confirmed reading to the end within the last ``max_lag_s``."""
        return self._current_at is not None and self._clock() - self._current_at <= self.max_lag_s

    def staleness(self) -> str:
        """For error messages: when the copy was last confirmed current."""
        if self._current_at is None:
            return "never"
        return f"{self._clock() - self._current_at:.1f}s ago"

    async def publish(self, record: OutgoingRecord) -> RecordMetadata:
        """Append ``record`` to partition 0, acknowledged by the in-sync replicas."""
        await self.ensure_topic()
        if self._producer is None:
            producer = self._transport.producer(linger_ms=0)
            await producer.start()
            self._producer = producer
        return await self._producer.send(record)

    async def stop(self) -> None:
        if self._reader is not None:
            # The flag as well as the cancel: a cancel can be lost in a poll that
            # completes at the same moment (asyncio.wait_for before Python 3.12).
            self._stopping = True
            await cancel_and_wait(self._reader)
            self._reader = None
        for client in (self._consumer, self._producer):
            if client is not None:
                with contextlib.suppress(TransportError):
                    await client.stop()
        self._consumer = self._producer = None

    async def _tail(self, consumer: ConsumerTransport) -> None:
        """Read forever; mark the copy current each time the end offset is reached."""
        failures = 0
        while not self._stopping:
            try:
                self._round += 1
                this_round = self._round
                asked_at = self._clock()
                end = (await consumer.end_offsets([self._tp]))[self._tp]
                while await consumer.position(self._tp) < end:
                    self._apply(await consumer.poll(timeout_ms=self._poll_timeout_ms))
                async with self._confirmed:
                    self._current_at = asked_at
                    self._confirmed_round = this_round
                    self._confirmed.notify_all()
                self._apply(await consumer.poll(timeout_ms=self._poll_timeout_ms))
            except TransportError as exc:
                failures += 1
                log.warning("tail.error", topic=self.topic, error=str(exc))
                await asyncio.sleep(_TAIL_BACKOFF.delay_s(failures))
                continue
            failures = 0
            if self._on_round is not None:
                self._on_round()

    def _apply(self, batch: dict[TopicPartition, list[Record]]) -> None:
        for records in batch.values():
            for record in records:
                self._apply_record(record)


__all__ = ["TailedTopic"]
