"""State of the in-memory Kafka behind :mod:`streaming.transport.memory` (internal).

Partition logs with gap-tolerant offsets, Kafka's murmur2 key placement, consumer
groups (membership, generations, round-robin targets, committed offsets), transactions
with control markers and last-stable offsets, and log compaction. The client classes
in :mod:`streaming.transport.memory` are the only users; everything here is synchronous
and runs on the event loop thread, so no locks are needed.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from streaming.errors import TopicError, TransportError
from streaming.transport.base import (
    Headers,
    OutgoingRecord,
    Record,
    RecordMetadata,
    TopicPartition,
    TopicSpec,
)

_MASK32 = 0xFFFFFFFF
_MURMUR_M = 0x5BD1E995
_MURMUR_SEED = 0x9747B28C

#: Topic configs a Kafka 4 broker reports for a topic without overrides (the usual subset).
DEFAULT_TOPIC_CONFIG: Mapping[str, str] = {
    "cleanup.policy": "delete",
    "compression.type": "producer",
    "delete.retention.ms": "86400000",
    "file.delete.delay.ms": "60000",
    "flush.messages": "9223372036854775807",
    "flush.ms": "9223372036854775807",
    "index.interval.bytes": "4096",
    "local.retention.bytes": "-2",
    "local.retention.ms": "-2",
    "max.compaction.lag.ms": "9223372036854775807",
    "max.message.bytes": "1048588",
    "message.timestamp.after.max.ms": "3600000",
    "message.timestamp.before.max.ms": "9223372036854775807",
    "message.timestamp.type": "CreateTime",
    "min.cleanable.dirty.ratio": "0.5",
    "min.compaction.lag.ms": "0",
    "min.insync.replicas": "1",
    "preallocate": "false",
    "remote.storage.enable": "false",
    "retention.bytes": "-1",
    "retention.ms": "604800000",
    "segment.bytes": "1073741824",
    "segment.index.bytes": "10485760",
    "segment.jitter.ms": "0",
    "segment.ms": "604800000",
    "unclean.leader.election.enable": "false",
}


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 hash of ``data``, as the signed int Java's ``Utils.murmur2`` gives."""
    length = len(data)
    h = (_MURMUR_SEED ^ length) & _MASK32
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _MURMUR_M) & _MASK32
        k ^= k >> 24
        k = (k * _MURMUR_M) & _MASK32
        h = ((h * _MURMUR_M) & _MASK32) ^ k
    tail = length - whole
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * _MURMUR_M) & _MASK32
    h ^= h >> 13
    h = (h * _MURMUR_M) & _MASK32
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a keyed record."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


# --------------------------------------------------------------------------- broker state


class GroupMember(Protocol):
    """What the broker needs to know about a consumer-group member."""

    @property
    def subscription(self) -> frozenset[str]: ...

    @property
    def session_timeout_s(self) -> float: ...


@dataclass(slots=True)
class Txn:
    transactional_id: str
    state: str = "open"  # open | committed | aborted
    partitions: set[tuple[str, int]] = field(default_factory=set)
    offsets: dict[str, dict[TopicPartition, int]] = field(default_factory=dict)


@dataclass(slots=True)
class Entry:
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    txn: Txn | None = None
    control: bool = False

    def deliverable(self, read_committed: bool) -> bool:
        if self.control:
            return False
        if self.txn is None or not read_committed:
            return True
        return self.txn.state == "committed"

    def record(self, topic: str, partition: int) -> Record:
        return Record(
            topic, partition, self.offset, self.timestamp_ms, self.key, self.value, self.headers
        )


class PartitionLog:
    """One partition's log: entries in offset order, possibly with gaps after compaction."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.offsets: list[int] = []
        self.log_start = 0
        self.next_offset = 0
        self.open_txns: dict[str, int] = {}  # transactional id -> first offset in this txn

    def append(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.offsets.append(entry.offset)
        self.next_offset = entry.offset + 1

    def end(self, read_committed: bool) -> int:
        """High watermark, or the last stable offset for ``read_committed`` readers."""
        if read_committed and self.open_txns:
            return min(self.open_txns.values())
        return self.next_offset

    def scan(self, start: int, stop: int) -> Iterator[Entry]:
        i = bisect.bisect_left(self.offsets, start)
        while i < len(self.entries) and self.entries[i].offset < stop:
            yield self.entries[i]
            i += 1

    def replace(self, entries: list[Entry]) -> None:
        self.entries = entries
        self.offsets = [e.offset for e in entries]


@dataclass(slots=True)
class TopicLog:
    name: str
    partitions: list[PartitionLog]
    config: dict[str, str]
    round_robin: Iterator[int]

    def partition(self, index: int) -> PartitionLog:
        if not 0 <= index < len(self.partitions):
            raise TopicError(
                f"partition {index} does not exist in {self.name!r} (it has {len(self.partitions)})"
            )
        return self.partitions[index]


class Group:
    """A consumer group: members, the target assignment of the current generation, offsets."""

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.members: dict[str, GroupMember] = {}
        self.generation = 0
        self.target: dict[str, frozenset[TopicPartition]] = {}
        self.pending_revoke: set[str] = set()
        self.rebalance_started = 0.0
        self.offsets: dict[TopicPartition, int] = {}

    @property
    def state(self) -> str:
        if not self.members:
            return "Empty"
        return "PreparingRebalance" if self.pending_revoke else "Stable"


class Broker:
    """All state of the in-memory cluster, shared by every client of one transport."""

    def __init__(
        self,
        *,
        brokers: int,
        cluster_id: str,
        auto_create_topics: bool,
        default_partitions: int,
        clock_ms: Callable[[], int],
    ) -> None:
        self.brokers = brokers
        self.cluster_id = cluster_id
        self.auto_create_topics = auto_create_topics
        self.default_partitions = default_partitions
        self.clock_ms = clock_ms
        self.topics: dict[str, TopicLog] = {}
        self.groups: dict[str, Group] = {}
        self.txn_epochs: dict[str, int] = {}
        self.open_txns: dict[str, Txn] = {}
        self._changed = asyncio.Event()
        self._member_ids = itertools.count(1)

    # -- change notification: poll() waits on the current event; every change swaps it.
    def changed(self) -> asyncio.Event:
        return self._changed

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def new_member_id(self, client_id: str) -> str:
        return f"{client_id}-{next(self._member_ids)}"

    # -- topics
    def create_topic(self, spec: TopicSpec) -> None:
        if spec.name in self.topics:
            return
        spec = spec.sized_for(self.brokers)
        assert spec.replication_factor is not None
        if spec.partitions < 1:
            raise TopicError(f"cannot create topic {spec.name!r}: partitions must be >= 1")
        if not 1 <= spec.replication_factor <= self.brokers:
            raise TopicError(
                f"cannot create topic {spec.name!r}: replication factor "
                f"{spec.replication_factor} larger than available brokers: {self.brokers}"
            )
        check_config(spec.name, spec.config)
        self.topics[spec.name] = TopicLog(
            name=spec.name,
            partitions=[PartitionLog() for _ in range(spec.partitions)],
            config=dict(spec.config),
            round_robin=itertools.cycle(range(spec.partitions)),
        )
        self._rebalance_groups_on({spec.name})

    def delete_topic(self, name: str) -> None:
        if self.topics.pop(name, None) is None:
            return
        for group in self.groups.values():
            group.offsets = {tp: o for tp, o in group.offsets.items() if tp.topic != name}
        self._rebalance_groups_on({name})

    def topic(self, name: str) -> TopicLog:
        found = self.topics.get(name)
        if found is None and self.auto_create_topics:
            self.create_topic(TopicSpec(name, self.default_partitions))
            found = self.topics[name]
        if found is None:
            raise TopicError(f"topic {name!r} does not exist; create it with the admin client")
        return found

    def partition(self, tp: TopicPartition) -> PartitionLog:
        return self.topic(tp.topic).partition(tp.partition)

    # -- records
    def append(self, record: OutgoingRecord, txn: Txn | None) -> RecordMetadata:
        topic = self.topic(record.topic)
        if record.partition is not None:
            index = record.partition
        elif record.key is not None:
            index = partition_for_key(record.key, len(topic.partitions))
        else:
            index = next(topic.round_robin)
        part = topic.partition(index)
        if record.key is None and "compact" in topic_config(topic, "cleanup.policy"):
            raise TransportError(
                f"send to {record.topic}: compacted topics refuse records without a key"
            )
        if topic_config(topic, "message.timestamp.type") == "LogAppendTime":
            ts = self.clock_ms()
        else:
            ts = record.timestamp_ms if record.timestamp_ms is not None else self.clock_ms()
        entry = Entry(part.next_offset, ts, record.key, record.value, record.headers, txn)
        if txn is not None:
            part.open_txns.setdefault(txn.transactional_id, entry.offset)
            txn.partitions.add((record.topic, index))
        part.append(entry)
        self.notify()
        return RecordMetadata(record.topic, index, entry.offset, ts)

    # -- transactions
    def init_transactions(self, transactional_id: str) -> int:
        """Fence older producers with this id and abort their open transaction."""
        previous = self.open_txns.get(transactional_id)
        if previous is not None:
            self.end_transaction(previous, commit=False)
        epoch = self.txn_epochs.get(transactional_id, -1) + 1
        self.txn_epochs[transactional_id] = epoch
        return epoch

    def end_transaction(self, txn: Txn, *, commit: bool) -> None:
        txn.state = "committed" if commit else "aborted"
        self.open_txns.pop(txn.transactional_id, None)
        now = self.clock_ms()
        for topic_name, index in sorted(txn.partitions):
            topic = self.topics.get(topic_name)
            if topic is None:
                continue
            part = topic.partitions[index]
            part.open_txns.pop(txn.transactional_id, None)
            part.append(Entry(part.next_offset, now, None, None, (), txn, control=True))
        if commit:
            for group_id, offsets in txn.offsets.items():
                self.group(group_id).offsets.update(offsets)
        self.notify()

    # -- groups
    def group(self, group_id: str) -> Group:
        return self.groups.setdefault(group_id, Group(group_id))

    def rebalance(self, group: Group) -> None:
        """Start a new generation: compute a round-robin target, ask everyone to revoke."""
        group.generation += 1
        members = sorted(group.members)
        target: dict[str, set[TopicPartition]] = {m: set() for m in members}
        wanted = sorted(
            {
                TopicPartition(t, p)
                for m in members
                for t in group.members[m].subscription
                if t in self.topics
                for p in range(len(self.topics[t].partitions))
            }
        )
        turn = itertools.cycle(members)
        for tp in wanted:
            for _ in range(len(members)):
                member = next(turn)
                if tp.topic in group.members[member].subscription:
                    target[member].add(tp)
                    break
        group.target = {m: frozenset(tps) for m, tps in target.items()}
        group.pending_revoke = set(members)
        group.rebalance_started = time.monotonic()
        self.notify()

    def _rebalance_groups_on(self, topics: set[str]) -> None:
        for group in self.groups.values():
            if any(topics & m.subscription for m in group.members.values()):
                self.rebalance(group)

    # -- compaction
    def compact(self, name: str) -> int:
        """Keep the newest record per key below the stable offset; drop tombstones."""
        topic = self.topic(name)
        removed = 0
        for part in topic.partitions:
            stable = part.end(read_committed=True)
            latest: dict[bytes | None, int] = {}
            for entry in part.scan(part.log_start, stable):
                if entry.deliverable(read_committed=True):
                    latest[entry.key] = entry.offset
            kept = [
                e
                for e in part.entries
                if e.offset >= stable
                or (
                    e.deliverable(read_committed=True)
                    and latest.get(e.key) == e.offset
                    and e.value is not None
                )
            ]
            removed += len(part.entries) - len(kept)
            part.replace(kept)
        return removed


def topic_config(topic: TopicLog, name: str) -> str:
    return topic.config.get(name, DEFAULT_TOPIC_CONFIG.get(name, ""))


def check_config(topic: str, config: Mapping[str, str]) -> None:
    unknown = sorted(set(config) - set(DEFAULT_TOPIC_CONFIG))
    if unknown:
        raise TopicError(f"topic {topic!r}: unknown topic config name(s) {unknown}")


__all__ = [
    "DEFAULT_TOPIC_CONFIG",
    "Broker",
    "Entry",
    "Group",
    "GroupMember",
    "PartitionLog",
    "TopicLog",
    "Txn",
    "check_config",
    "murmur2",
    "partition_for_key",
    "topic_config",
]
