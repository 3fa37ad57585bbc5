"""An in-memory Kafka behind the transport protocols, for unit tests (ours and users').

It keeps Kafka's observable semantics so a handler tested here behaves the same on a
real broker: partitions with gap-tolerant offsets, murmur2 key placement, headers,
CreateTime/LogAppendTime timestamps, consumer groups with eager round-robin rebalances,
committed offsets, pause/resume/seek, transactions with control markers (so offsets and
``read_committed`` visibility match a real broker) and a :meth:`InMemoryTransport.compact`
helper that simulates log compaction. The behavioural suite in ``tests/transport`` runs
against both this module and :mod:`streaming.transport.kafka`.

Differences worth knowing: rebalance callbacks run inside ``poll()`` (aiokafka runs them
in a background task), a transactional producer aborts its open transaction on
``stop()`` (Kafka waits for the transaction timeout), and there is one broker, so a
replication factor above ``brokers`` is rejected like Kafka would.

Why it is long (~660 lines): it mirrors :mod:`streaming.transport.kafka` class for class
(producer, consumer with groups and transactions, admin) so the shared contract suite
runs against both; ``InMemoryConsumer`` (~310 lines) is as large as the consumer
protocol it models. The broker state itself lives in ``_memory_broker``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence

import structlog

from streaming.core.clock import now_ms
from streaming.errors import (
    CommitFencedError,
    GroupNotEmptyError,
    TopicError,
    TransactionError,
    TransportError,
)
from streaming.transport._memory_broker import (
    DEFAULT_TOPIC_CONFIG,
    Broker,
    Group,
    PartitionLog,
    TopicLog,
    Txn,
    check_config,
    murmur2,
    partition_for_key,
)
from streaming.transport.base import (
    ClusterInfo,
    GroupInfo,
    IsolationLevel,
    OutgoingRecord,
    RebalanceCallback,
    Record,
    RecordMetadata,
    Settled,
    TopicPartition,
    TopicSpec,
)

log = structlog.get_logger(__name__)


# --------------------------------------------------------------------------- clients


class _Lifecycle:
    """Start/stop bookkeeping; using a client before ``start()`` is a clear error."""

    _kind = "client"

    def __init__(self) -> None:
        self._started = False

    def _require_started(self) -> None:
        if not self._started:
            raise TransportError(f"in-memory {self._kind} is not started; call start() first")


class InMemoryProducer(_Lifecycle):
    """Producer transport writing into the in-memory broker."""

    _kind = "producer"

    def __init__(self, broker: Broker, transactional_id: str | None) -> None:
        super().__init__()
        self._broker = broker
        self._transactional_id = transactional_id
        self._epoch = -1
        self._txn: Txn | None = None

    async def start(self) -> None:
        if self._transactional_id is not None:
            self._epoch = self._broker.init_transactions(self._transactional_id)
        self._started = True

    async def stop(self) -> None:
        if self._txn is not None and self._txn.state == "open" and not self._fenced():
            self._broker.end_transaction(self._txn, commit=False)
        self._txn = None
        self._started = False

    async def send(self, record: OutgoingRecord) -> RecordMetadata:
        self._require_started()
        if self._transactional_id is not None:
            self._check_not_fenced()
            if self._txn is None:
                raise TransactionError(
                    f"send to {record.topic}: a transactional producer can only send "
                    "inside begin_transaction()/commit_transaction()"
                )
        return self._broker.append(record, self._txn)

    async def send_many(self, records: Sequence[OutgoingRecord]) -> list[RecordMetadata]:
        return [await self.send(r) for r in records]

    async def enqueue(
        self, record: OutgoingRecord, *, settled: Settled | None = None
    ) -> asyncio.Future[RecordMetadata]:
        """Append now (nothing is buffered in memory); a refused send raises here, as
        Kafka's client raises what it can tell before buffering."""
        delivery: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        delivery.set_result(await self.send(record))
        if settled is not None:
            settled(record.topic, 1, None)
        return delivery

    async def flush(self) -> None:
        self._require_started()

    async def begin_transaction(self) -> None:
        self._require_transactional("begin transaction")
        if self._txn is not None:
            raise TransactionError("begin transaction: a transaction is already in progress")
        assert self._transactional_id is not None
        self._txn = Txn(self._transactional_id)
        self._broker.open_txns[self._transactional_id] = self._txn

    async def commit_transaction(self) -> None:
        txn = self._current_txn("commit transaction")
        self._broker.end_transaction(txn, commit=True)
        self._txn = None

    async def abort_transaction(self) -> None:
        txn = self._current_txn("abort transaction")
        self._broker.end_transaction(txn, commit=False)
        self._txn = None

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group_id: str
    ) -> None:
        txn = self._current_txn("send offsets to transaction")
        txn.offsets.setdefault(group_id, {}).update(offsets)

    def _fenced(self) -> bool:
        tid = self._transactional_id
        return tid is not None and self._broker.txn_epochs.get(tid) != self._epoch

    def _check_not_fenced(self) -> None:
        if self._fenced():
            raise TransactionError(
                f"producer with transactional id {self._transactional_id!r} was fenced by a "
                "newer instance"
            )

    def _require_transactional(self, what: str) -> None:
        self._require_started()
        if self._transactional_id is None:
            raise TransactionError(f"{what}: producer was created without a transactional_id")
        self._check_not_fenced()

    def _current_txn(self, what: str) -> Txn:
        self._require_transactional(what)
        if self._txn is None:
            raise TransactionError(f"{what}: no transaction in progress")
        return self._txn


class InMemoryConsumer(_Lifecycle):
    """Consumer transport reading from the in-memory broker; never auto-commits."""

    _kind = "consumer"

    def __init__(
        self,
        broker: Broker,
        *,
        group_id: str | None,
        auto_offset_reset: str,
        isolation_level: str,
        max_poll_records: int,
        session_timeout_ms: int,
        client_id: str,
    ) -> None:
        super().__init__()
        if auto_offset_reset not in {"earliest", "latest", "none"}:
            raise TransportError(f"auto_offset_reset {auto_offset_reset!r} is not valid")
        if isolation_level not in {"read_committed", "read_uncommitted"}:
            raise TransportError(f"isolation_level {isolation_level!r} is not valid")
        self._broker = broker
        self._group_id = group_id
        self._reset = auto_offset_reset
        self._read_committed = isolation_level == "read_committed"
        self._max_poll_records = max_poll_records
        self.session_timeout_s = session_timeout_ms / 1000
        self._client_id = client_id
        self.subscription: frozenset[str] = frozenset()
        self._on_assigned: RebalanceCallback | None = None
        self._on_revoked: RebalanceCallback | None = None
        self._member_id: str | None = None
        self._generation = -1
        self._assignment: set[TopicPartition] = set()
        self._positions: dict[TopicPartition, int | None] = {}
        self._paused: set[TopicPartition] = set()
        self._turn = 0

    # -- lifecycle and membership
    async def start(self) -> None:
        self._started = True
        if self.subscription:
            self._join()

    async def stop(self) -> None:
        self._leave()
        self._started = False

    def subscribe(
        self,
        topics: Sequence[str],
        *,
        on_assigned: RebalanceCallback | None = None,
        on_revoked: RebalanceCallback | None = None,
    ) -> None:
        if not topics:
            raise TransportError("subscribe needs at least one topic")
        if self._assignment and not self.subscription:
            raise TransportError("subscribe: consumer already uses assign(); they are exclusive")
        self.subscription = frozenset(topics)
        self._on_assigned, self._on_revoked = on_assigned, on_revoked
        if not self._started:
            return
        if self._member_id is None:
            self._join()
        elif self._group_id is not None:  # a new subscription is a new generation
            self._broker.rebalance(self._broker.group(self._group_id))

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        if self.subscription:
            raise TransportError("assign: consumer already uses subscribe(); they are exclusive")
        for tp in partitions:
            self._broker.partition(tp)
        self._assignment = set(partitions)
        self._positions = {tp: self._positions.get(tp) for tp in partitions}
        self._paused &= self._assignment
        self._broker.notify()

    def assignment(self) -> set[TopicPartition]:
        return set(self._assignment)

    def _join(self) -> None:
        self._member_id = self._broker.new_member_id(self._client_id)
        if self._group_id is not None:
            group = self._broker.group(self._group_id)
            group.members[self._member_id] = self
            self._broker.rebalance(group)
        else:
            self._broker.notify()

    def _leave(self) -> None:
        if self._group_id is not None and self._member_id is not None:
            group = self._broker.group(self._group_id)
            if group.members.pop(self._member_id, None) is not None:
                group.pending_revoke.discard(self._member_id)
                self._broker.rebalance(group)
        self._member_id = None
        self._generation = -1
        if self.subscription:
            self._assignment.clear()
            self._positions.clear()
            self._paused.clear()

    async def _sync_group(self) -> float | None:
        """Advance this member through a pending rebalance; the wait deadline, if any."""
        if not self.subscription or self._member_id is None:
            return None
        if self._group_id is None:
            wanted = {
                TopicPartition(t, p)
                for t in self.subscription
                if t in self._broker.topics
                for p in range(len(self._broker.topics[t].partitions))
            }
            if wanted != self._assignment:
                await self._revoke()
                await self._apply(wanted)
            return None
        group = self._broker.group(self._group_id)
        if self._member_id not in group.members:  # evicted: partitions are lost, rejoin
            await self._revoke()
            self._join()
        if self._generation == group.generation:
            return None
        if self._member_id in group.pending_revoke:
            await self._revoke()
            group.pending_revoke.discard(self._member_id)
            self._broker.notify()
        if group.pending_revoke:
            return self._evict_stragglers(group)
        self._generation = group.generation
        await self._apply(set(group.target.get(self._member_id, frozenset())))
        return None

    def _evict_stragglers(self, group: Group) -> float:
        deadline = group.rebalance_started + max(
            group.members[m].session_timeout_s for m in group.pending_revoke
        )
        if time.monotonic() < deadline:
            return deadline
        for member in list(group.pending_revoke):
            log.warning(
                "evicting consumer that did not rejoin", group=group.group_id, member=member
            )
            group.members.pop(member, None)
        group.pending_revoke.clear()
        self._broker.rebalance(group)
        return time.monotonic()

    async def _revoke(self) -> None:
        revoked = sorted(self._assignment)
        self._assignment.clear()
        self._positions.clear()
        self._paused.clear()
        await _run_callback(self._on_revoked, revoked, "on_revoked")

    async def _apply(self, assignment: set[TopicPartition]) -> None:
        self._assignment = set(assignment)
        self._positions = dict.fromkeys(assignment)
        await _run_callback(self._on_assigned, sorted(assignment), "on_assigned")

    # -- fetching
    async def poll(
        self, timeout_ms: int = 1000, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]:
        self._require_started()
        limit = max_records or self._max_poll_records
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        while True:
            rebalance_deadline = await self._sync_group()
            changed = self._broker.changed()  # taken before looking, so no wake-up is lost
            batch = self._fetch(limit)
            if batch:
                return batch
            wait_s = deadline - loop.time()
            if rebalance_deadline is not None:
                wait_s = min(wait_s, rebalance_deadline - time.monotonic())
            if wait_s <= 0 and loop.time() >= deadline:
                return {}
            try:
                await asyncio.wait_for(changed.wait(), max(wait_s, 0))
            except TimeoutError:
                if loop.time() >= deadline:
                    return {}

    def _fetch(self, limit: int) -> dict[TopicPartition, list[Record]]:
        ready = sorted(self._assignment - self._paused)
        if not ready:
            return {}
        self._turn = (self._turn + 1) % len(ready)
        out: dict[TopicPartition, list[Record]] = {}
        taken = 0
        for tp in ready[self._turn :] + ready[: self._turn]:
            topic = self._broker.topics.get(tp.topic)
            if taken >= limit or topic is None or tp.partition >= len(topic.partitions):
                continue
            part = topic.partitions[tp.partition]
            position = self._resolve(tp, part)
            records: list[Record] = []
            for entry in part.scan(position, part.end(self._read_committed)):
                if taken >= limit:
                    break
                position = entry.offset + 1
                if entry.deliverable(self._read_committed):
                    records.append(entry.record(tp.topic, tp.partition))
                    taken += 1
            if taken < limit:  # everything visible was read; skip trailing gaps and markers
                position = max(position, part.end(self._read_committed))
            self._positions[tp] = position
            if records:
                out[tp] = records
        return out

    def _resolve(self, tp: TopicPartition, part: PartitionLog) -> int:
        """The fetch position, applying committed offsets and the reset policy."""
        position = self._positions.get(tp)
        if position is None and self._group_id is not None:
            position = self._broker.group(self._group_id).offsets.get(tp)
        if position is None or not part.log_start <= position <= part.next_offset:
            if self._reset == "none":
                raise TransportError(f"{tp}: no valid offset and auto_offset_reset='none'")
            position = part.log_start if self._reset == "earliest" else part.next_offset
        self._positions[tp] = position
        return position

    # -- offsets
    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._require_started()
        if not offsets:
            return
        if self._group_id is None:
            raise TransportError("commit offsets: requires a consumer created with a group_id")
        group = self._broker.group(self._group_id)
        if self.subscription and self._member_id not in group.members:
            raise CommitFencedError(
                "commit offsets: this consumer is no longer a member of group "
                f"{self._group_id!r} (its partitions were reassigned)"
            )
        for tp, offset in offsets.items():
            self._broker.partition(tp)
            if offset < 0:
                raise TransportError(f"commit offsets: {tp} offset {offset} is negative")
        group.offsets.update(offsets)

    async def committed(self, tp: TopicPartition) -> int | None:
        self._require_started()
        if self._group_id is None:
            raise TransportError("committed: requires a consumer created with a group_id")
        return self._broker.group(self._group_id).offsets.get(tp)

    async def position(self, tp: TopicPartition) -> int:
        self._require_assigned("position", tp)
        return self._resolve(tp, self._broker.partition(tp))

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._require_assigned("seek", tp)
        if offset < 0:
            raise TransportError(f"seek: offset {offset} for {tp} is negative")
        self._positions[tp] = offset
        self._broker.notify()

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        for tp in tps or tuple(self._assignment):
            self._require_assigned("seek", tp)
            self._positions[tp] = self._broker.partition(tp).log_start
        self._broker.notify()

    async def seek_to_end(self, *tps: TopicPartition) -> None:
        for tp in tps or tuple(self._assignment):
            self._require_assigned("seek", tp)
            self._positions[tp] = self._broker.partition(tp).end(self._read_committed)
        self._broker.notify()

    def pause(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self._require_assigned("pause", tp)
        self._paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self._paused.difference_update(tps)
        self._broker.notify()

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    async def beginning_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self._broker.partition(tp).log_start for tp in tps}

    async def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self._broker.partition(tp).end(self._read_committed) for tp in tps}

    async def offsets_for_times(
        self, timestamps: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int | None]:
        out: dict[TopicPartition, int | None] = {}
        for tp, ts in timestamps.items():
            part = self._broker.partition(tp)
            out[tp] = next(
                (
                    e.offset
                    for e in part.scan(part.log_start, part.end(self._read_committed))
                    if not e.control and e.timestamp_ms >= ts
                ),
                None,
            )
        return out

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(len(self._broker.topic(topic).partitions)))

    def _require_assigned(self, what: str, tp: TopicPartition) -> None:
        if tp not in self._assignment:
            raise TransportError(f"{what}: partition {tp} is not assigned to this consumer")


async def _run_callback(
    callback: RebalanceCallback | None, tps: list[TopicPartition], name: str
) -> None:
    """Run a rebalance callback; like aiokafka, a failing callback is logged, not raised."""
    if callback is None:
        return
    try:
        await callback(tps)
    except Exception:
        log.exception("rebalance callback failed", callback=name, partitions=[str(t) for t in tps])


class InMemoryAdmin(_Lifecycle):
    """Admin transport over the in-memory broker."""

    _kind = "admin client"

    def __init__(self, broker: Broker) -> None:
        super().__init__()
        self._broker = broker

    async def start(self) -> None:
        self._started = True

    async def stop(self) -> None:
        self._started = False

    async def describe_cluster(self) -> ClusterInfo:
        self._require_started()
        brokers = tuple(f"in-memory:{9092 + i}" for i in range(self._broker.brokers))
        return ClusterInfo(self._broker.cluster_id, 0, brokers)

    async def list_topics(self) -> set[str]:
        self._require_started()
        return set(self._broker.topics)

    async def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        self._require_started()
        for spec in specs:
            self._broker.create_topic(spec)

    async def delete_topics(self, names: Sequence[str]) -> None:
        self._require_started()
        for name in names:
            self._broker.delete_topic(name)

    async def partition_count(self, topic: str) -> int:
        self._require_started()
        return len(self._existing(topic).partitions)

    async def describe_topic_config(self, topic: str) -> dict[str, str]:
        self._require_started()
        return {**DEFAULT_TOPIC_CONFIG, **self._existing(topic).config}

    async def alter_topic_config(self, topic: str, config: Mapping[str, str]) -> None:
        self._require_started()
        found = self._existing(topic)
        check_config(topic, config)
        found.config.update(config)

    async def list_groups(self) -> list[str]:
        self._require_started()
        return sorted(g.group_id for g in self._broker.groups.values() if g.members or g.offsets)

    async def describe_group(self, group_id: str) -> GroupInfo:
        self._require_started()
        group = self._broker.groups.get(group_id)
        if group is None or not (group.members or group.offsets):
            return GroupInfo(group_id=group_id, state="Dead", members=0)
        ids = tuple(sorted(group.members))
        return GroupInfo(group_id, state=group.state, members=len(ids), member_ids=ids)

    async def group_offsets(self, group_id: str) -> dict[TopicPartition, int]:
        self._require_started()
        group = self._broker.groups.get(group_id)
        return dict(group.offsets) if group is not None else {}

    async def alter_group_offsets(
        self, group_id: str, offsets: Mapping[TopicPartition, int]
    ) -> None:
        self._require_started()
        group = self._broker.group(group_id)
        if group.members:
            raise GroupNotEmptyError(
                f"alter offsets of group {group_id!r}: the group has {len(group.members)} active "
                "member(s); stop its consumers first"
            )
        for tp in offsets:
            self._broker.partition(tp)
        group.offsets.update(offsets)

    def _existing(self, topic: str) -> TopicLog:
        found = self._broker.topics.get(topic)
        if found is None:
            raise TopicError(f"topic {topic!r} does not exist")
        return found


class InMemoryTransport:
    """A :class:`~streaming.transport.base.TransportFactory` over one in-memory cluster.

    Every client built by one instance shares its broker, so a producer's records reach
    that instance's consumers. ``clock_ms`` stamps records without a timestamp.
    """

    def __init__(
        self,
        *,
        brokers: int = 1,
        cluster_id: str = "in-memory",
        auto_create_topics: bool = False,
        default_partitions: int = 1,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self._broker = Broker(
            brokers=brokers,
            cluster_id=cluster_id,
            auto_create_topics=auto_create_topics,
            default_partitions=default_partitions,
            clock_ms=clock_ms or now_ms,
        )

    def producer(
        self,
        *,
        transactional_id: str | None = None,
        linger_ms: int = 5,
        max_batch_size: int = 1_048_576,
        compression: str | None = None,
    ) -> InMemoryProducer:
        return InMemoryProducer(self._broker, transactional_id)

    def consumer(
        self,
        *,
        group_id: str | None = None,
        auto_offset_reset: str = "earliest",
        isolation_level: IsolationLevel = "read_committed",
        max_poll_records: int = 500,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
        client_id: str | None = None,
    ) -> InMemoryConsumer:
        return InMemoryConsumer(
            self._broker,
            group_id=group_id,
            auto_offset_reset=auto_offset_reset,
            isolation_level=isolation_level,
            max_poll_records=max_poll_records,
            session_timeout_ms=session_timeout_ms,
            client_id=client_id or "in-memory-consumer",
        )

    def admin(self) -> InMemoryAdmin:
        return InMemoryAdmin(self._broker)

    def compact(self, topic: str) -> int:
        """Simulate log compaction of ``topic`` now; returns how many entries were removed."""
        removed = self._broker.compact(topic)
        self._broker.notify()
        return removed

    def records(self, topic: str, *, read_committed: bool = False) -> list[Record]:
        """Every record currently in ``topic``, partition by partition, for assertions."""
        found = self._broker.topic(topic)
        return [
            e.record(topic, index)
            for index, part in enumerate(found.partitions)
            for e in part.entries
            if e.deliverable(read_committed)
            and (not read_committed or e.offset < part.end(read_committed=True))
        ]


__all__ = [
    "DEFAULT_TOPIC_CONFIG",
    "InMemoryAdmin",
    "InMemoryConsumer",
    "InMemoryProducer",
    "InMemoryTransport",
    "murmur2",
    "partition_for_key",
]
