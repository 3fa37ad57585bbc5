"""The transport boundary: the small interface between our logic and Kafka.

Everything above this line (serde, producer, consumer, retry, registry store, replay,
audit sink) talks to these protocols only. :mod:`streaming.transport.kafka` is the one
module that imports aiokafka; :mod:`streaming.transport.memory` is an in-memory broker
with the same behaviour for unit tests (ours and users').

Records are plain frozen values: bytes in, bytes out. Headers are an ordered tuple of
``(name, value)`` pairs because Kafka allows repeated header names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Headers = tuple[tuple[str, bytes], ...]
#: What a consumer sees of transactional writes. ``read_committed`` (the default for every
#: reader in the product) hides aborted transactions and stops at the last stable offset.
IsolationLevel = Literal["read_committed", "read_uncommitted"]


@dataclass(frozen=True, order=True, slots=True)
class TopicPartition:
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]"


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed record, exactly as the broker stored it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def header(self, name: str) -> bytes | None:
        """The last value of header ``name`` (Kafka allows repeats; the newest wins)."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found


@dataclass(frozen=True, slots=True)
class RecordMetadata:
    """Where a produced record landed."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """A record to produce; ``partition=None`` lets the partitioner pick by key."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    headers: Headers = ()
    partition: int | None = None
    timestamp_ms: int | None = None


MAX_DEFAULT_REPLICATION = 3
MAX_DEFAULT_MIN_INSYNC = 2


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create; ``config`` holds broker topic configs such as cleanup.policy.

    ``replication_factor=None`` sizes the topic for the cluster it is created on (see
    :meth:`sized_for`), so one broker going away loses nothing and stops no writer.
    """

    name: str
    partitions: int = 1
    replication_factor: int | None = None
    config: Mapping[str, str] = field(default_factory=dict)

    def sized_for(
        self, brokers: int, *, replication: int | None = None, min_insync: int | None = None
    ) -> TopicSpec:
        """This spec for a cluster of ``brokers``: replication as given, else ``replication``
        (``KAFKA_DEFAULT_REPLICATION_FACTOR``), else ``min(3, brokers)``; and unless
        configured, ``min.insync.replicas`` ``min(min_insync or 2, replication)``, so with
        ``acks=all`` one of three brokers may fail without stopping a writer."""
        factor = (
            self.replication_factor or replication or min(MAX_DEFAULT_REPLICATION, max(brokers, 1))
        )
        isr = min(min_insync or MAX_DEFAULT_MIN_INSYNC, factor)
        config = {"min.insync.replicas": str(isr), **self.config}
        return TopicSpec(self.name, self.partitions, factor, config)


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    cluster_id: str | None
    controller_id: int | None
    brokers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GroupInfo:
    group_id: str
    state: str
    members: int
    member_ids: tuple[str, ...] = ()
    """Who is in the group: a changed set between two looks means it rebalanced."""


RebalanceCallback = Callable[[Sequence[TopicPartition]], Awaitable[None]]


Settled = Callable[[str, int, BaseException | None], None]
"""``(topic, count, error)``: ``count`` enqueued records were acknowledged (``error`` is
``None``) or refused; cancelled records are not reported."""


@runtime_checkable
class ProducerTransport(Protocol):
    """Sends bytes. Idempotent (acks=all) unless the factory was told otherwise."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def send(self, record: OutgoingRecord) -> RecordMetadata:
        """Send one record and wait until the broker acknowledged it."""
        ...

    async def send_many(self, records: Sequence[OutgoingRecord]) -> list[RecordMetadata]:
        """Send a batch pipelined, wait for all acknowledgements, keep per-partition order."""
        ...

    async def enqueue(
        self, record: OutgoingRecord, *, settled: Settled | None = None
    ) -> asyncio.Future[RecordMetadata]:
        """Hand one record to the send buffer and return the future of its acknowledgement.

        Waits only while the buffer is full; records of one partition are written in the
        order they were enqueued. The future fails with a ``TransportError``. ``settled``
        is told ``(topic, count, error)`` once per group of records whose fate is known
        together (a batch), before anything awaiting their futures runs: how a producer
        counts sent records without a callback per record. A record whose ``enqueue``
        raises is not reported.
        """
        ...

    async def flush(self) -> None: ...

    # Transactions (only when created with a transactional id).
    async def begin_transaction(self) -> None: ...
    async def commit_transaction(self) -> None: ...
    async def abort_transaction(self) -> None: ...
    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group_id: str
    ) -> None: ...


@runtime_checkable
class ConsumerTransport(Protocol):
    """Receives bytes. Never auto-commits: callers commit after outcomes are durable."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    def subscribe(
        self,
        topics: Sequence[str],
        *,
        on_assigned: RebalanceCallback | None = None,
        on_revoked: RebalanceCallback | None = None,
    ) -> None:
        """Join the consumer group (needs a group id) for ``topics``."""
        ...

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        """Read ``partitions`` directly, without group management."""
        ...

    def assignment(self) -> set[TopicPartition]: ...

    async def poll(
        self, timeout_ms: int = 1000, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]:
        """Fetch what is available (possibly nothing) within ``timeout_ms``."""
        ...

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit *next* offsets (last processed + 1) for the group."""
        ...

    async def committed(self, tp: TopicPartition) -> int | None: ...
    async def position(self, tp: TopicPartition) -> int: ...
    def seek(self, tp: TopicPartition, offset: int) -> None: ...
    async def seek_to_beginning(self, *tps: TopicPartition) -> None: ...
    async def seek_to_end(self, *tps: TopicPartition) -> None: ...
    def pause(self, *tps: TopicPartition) -> None: ...
    def resume(self, *tps: TopicPartition) -> None: ...
    def paused(self) -> set[TopicPartition]: ...
    async def beginning_offsets(
        self, tps: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]: ...
    async def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]: ...
    async def offsets_for_times(
        self, timestamps: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int | None]:
        """First offset whose timestamp >= the given epoch-ms, None past the end."""
        ...

    async def partitions_for(self, topic: str) -> set[int]: ...


@runtime_checkable
class AdminTransport(Protocol):
    """Cluster and topic administration."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def describe_cluster(self) -> ClusterInfo: ...
    async def list_topics(self) -> set[str]: ...
    async def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create the topics that do not exist yet (existing ones are left alone)."""
        ...

    async def delete_topics(self, names: Sequence[str]) -> None: ...
    async def partition_count(self, topic: str) -> int: ...
    async def describe_topic_config(self, topic: str) -> dict[str, str]: ...
    async def alter_topic_config(self, topic: str, config: Mapping[str, str]) -> None: ...
    async def list_groups(self) -> list[str]: ...
    async def describe_group(self, group_id: str) -> GroupInfo: ...
    async def group_offsets(self, group_id: str) -> dict[TopicPartition, int]: ...
    async def alter_group_offsets(
        self, group_id: str, offsets: Mapping[TopicPartition, int]
    ) -> None: ...


class TransportFactory(Protocol):
    """Builds the three clients for one cluster (real Kafka or in memory)."""

    def producer(
        self,
        *,
        transactional_id: str | None = None,
        linger_ms: int = 5,
        max_batch_size: int = 1_048_576,
        compression: str | None = None,
    ) -> ProducerTransport: ...

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
    ) -> ConsumerTransport:
        """A consumer; ``read_committed`` by default, so aborted transactions never show."""
        ...

    def admin(self) -> AdminTransport: ...


__all__ = [
    "AdminTransport",
    "ClusterInfo",
    "ConsumerTransport",
    "GroupInfo",
    "Headers",
    "IsolationLevel",
    "OutgoingRecord",
    "ProducerTransport",
    "RebalanceCallback",
    "Record",
    "RecordMetadata",
    "Settled",
    "TopicPartition",
    "TopicSpec",
    "TransportFactory",
]
