"""Per-partition flow state of a consumer: what is done, what waits, what failed.

The consumer loop never sleeps. A partition that must wait - a retry record not yet due
(``x-not-before``), or a failed retry/DLQ write or registry outage (backing off
exponentially) - is sought back to the record and paused until then; the other
partitions flow on. :class:`PartitionFlow` keeps that state (offsets to commit, resume
times, consecutive failures) and commits. A rebalance bumps its generation: work that
started before it can no longer record offsets or pause partitions it may have lost.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection

import structlog

from streaming.clients.retry import H_NOT_BEFORE
from streaming.errors import CommitFencedError, TransportError
from streaming.transport.base import ConsumerTransport, Record, TopicPartition

log = structlog.get_logger(__name__)


class PartitionFlow:
    """Pause/resume, pending offsets and failure counts of the partitions one consumer owns."""

    def __init__(
        self,
        consumer: ConsumerTransport,
        *,
        clock_ms: Callable[[], int],
        backoff_s: tuple[float, float],
    ) -> None:
        self._consumer = consumer
        self._clock_ms = clock_ms
        self._backoff = backoff_s
        self.generation = 0
        self._pending: dict[TopicPartition, int] = {}
        self._resume_at: dict[TopicPartition, int] = {}
        self._failures: dict[TopicPartition, int] = {}

    # -- waiting partitions
    def poll_timeout_ms(self, longest_ms: int) -> int:
        """Resume due partitions; how long the next poll may wait (until the next is due)."""
        if not self._resume_at:
            return longest_ms
        now = self._clock_ms()
        due = [tp for tp, at in self._resume_at.items() if at <= now]
        for tp in due:
            del self._resume_at[tp]
        assigned = self._consumer.assignment()
        ready = [tp for tp in due if tp in assigned]
        if ready:
            self._consumer.resume(*ready)
        if not self._resume_at:
            return longest_ms
        return max(0, min(longest_ms, min(self._resume_at.values()) - self._clock_ms()))

    def not_due(self, tp: TopicPartition, record: Record, generation: int) -> bool:
        """True (and ``tp`` paused at ``record``) if a retry record's ``x-not-before`` is
        still in the future."""
        due = _not_before(record)
        if due is None or due <= self._clock_ms():
            return False
        self._rewind(tp, record.offset, due, generation)
        return True

    def back_off(self, tp: TopicPartition, record: Record, generation: int, why: str) -> None:
        """``record`` could not be finished now: pause ``tp`` at it, longer each time."""
        failures = self._failures.get(tp, 0) + 1
        self._failures[tp] = failures
        low, high = self._backoff
        delay_s = min(high, low * 2 ** (failures - 1))
        log.warning(
            "rewinding partition",
            partition=str(tp),
            offset=record.offset,
            retry_in_s=delay_s,
            error=why,
        )
        self._rewind(tp, record.offset, self._clock_ms() + int(delay_s * 1000), generation)

    def _rewind(self, tp: TopicPartition, offset: int, until_ms: int, generation: int) -> None:
        """Seek ``tp`` back to ``offset`` and pause it until ``until_ms``; others flow on."""
        if generation != self.generation or tp not in self._consumer.assignment():
            return
        self._consumer.seek(tp, offset)
        self._consumer.pause(tp)
        self._resume_at[tp] = until_ms

    # -- offsets
    def done(self, tp: TopicPartition, record: Record, generation: int) -> None:
        """``record`` is finished (handled, skipped or routed): commit past it."""
        self._failures.pop(tp, None)
        if generation == self.generation:
            self._pending[tp] = record.offset + 1

    async def caught_up(self, tp: TopicPartition, generation: int) -> None:
        """Every record of a poll is done: commit the position, which is past any
        transaction markers after the last record (else the lag never reaches 0)."""
        if generation != self.generation:
            return
        with contextlib.suppress(TransportError):
            position = await self._consumer.position(tp)
            if position > self._pending.get(tp, position):
                self._pending[tp] = position

    async def commit(self) -> bool:
        """Commit the pending offsets; True if a commit went through. A failed commit
        keeps them for the next one, a fenced one (a zombie) drops them."""
        if not self._pending:
            return False
        offsets, generation = dict(self._pending), self.generation
        self._pending.clear()
        try:
            return await self._commit(offsets)
        except TransportError as exc:
            log.warning("commit failed; records will be redelivered", error=str(exc))
            if generation == self.generation:
                for tp, off in offsets.items():
                    self._pending.setdefault(tp, off)
            return False

    async def revoke(self, tps: Collection[TopicPartition]) -> bool:
        """Commit what is done for ``tps``, then forget their state; True if committed.
        A member that lost its generation commits nothing (the transport fences it)."""
        self.generation += 1
        offsets = {tp: off for tp, off in self._pending.items() if tp in tps}
        committed = False
        if offsets:
            try:
                committed = await self._commit(offsets)
            except TransportError as exc:
                log.warning("commit on revoke failed", error=str(exc))
        for tp in tps:
            self._pending.pop(tp, None)
            self._resume_at.pop(tp, None)
            self._failures.pop(tp, None)
        return committed

    async def _commit(self, offsets: dict[TopicPartition, int]) -> bool:
        try:
            await self._consumer.commit(offsets)
        except CommitFencedError as exc:  # a zombie: never commit these offsets later
            log.warning("lost the group generation; offsets dropped", error=str(exc))
            return False
        return True


def _not_before(record: Record) -> int | None:
    raw = record.header(H_NOT_BEFORE)
    if raw is None:
        return None
    with contextlib.suppress(ValueError):
        return int(raw)
    return None


__all__ = ["PartitionFlow"]
