"""The real-Kafka transport: the only module that imports aiokafka.

aiokafka errors are translated here into :mod:`streaming.errors` types so nothing above
the boundary ever sees them.

Why it is long (~840 lines): it is the whole aiokafka boundary (producer, consumer and
admin transports and the error translation); keeping it one module is what makes
"only one module imports aiokafka" checkable at a glance.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka import TopicPartition as KTP
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    IllegalOperation,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NoBrokersAvailable,
    ProducerFenced,
    TopicAlreadyExistsError,
    UnknownMemberIdError,
    UnknownTopicOrPartitionError,
    for_code,
)
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.util import commit_structure_validate

from streaming.config import KafkaSettings
from streaming.core.backoff import Backoff
from streaming.errors import (
    BrokerUnavailableError,
    CommitFencedError,
    GroupNotEmptyError,
    PartialSendError,
    TopicError,
    TransactionError,
    TransientTransportError,
    TransportError,
)
from streaming.transport._enqueue import EnqueueBuffer
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

T = TypeVar("T")
_TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno
_UNKNOWN_TOPIC = 3
_KEY_CACHE_SIZE = 65_536  # key -> partition memo per producer (cleared when full)
# between asks while the group coordinator is not there yet (fresh broker, moved group)
COORDINATOR_BACKOFF = Backoff(initial_s=0.1, max_s=1.0)


def _ktp(tp: TopicPartition) -> KTP:
    return KTP(tp.topic, tp.partition)


def _tp(ktp: Any) -> TopicPartition:
    return TopicPartition(ktp.topic, ktp.partition)


def translate(exc: BaseException, what: str) -> TransportError:
    """Map an aiokafka error to our tree (callers ``raise translate(e, ...) from e``)."""
    if isinstance(exc, NoBrokersAvailable | KafkaConnectionError | KafkaTimeoutError):
        return BrokerUnavailableError(f"{what}: Kafka did not answer ({exc}); is the broker up?")
    if isinstance(exc, CommitFailedError | UnknownMemberIdError | IllegalGenerationError):
        return CommitFencedError(f"{what}: the group rebalanced without this member ({exc})")
    if isinstance(exc, ProducerFenced):
        return TransactionError(f"{what}: producer fenced by a newer instance ({exc})")
    if isinstance(exc, UnknownTopicOrPartitionError):
        return TopicError(f"{what}: topic or partition does not exist; create it first ({exc})")
    if isinstance(exc, IllegalOperation):  # not a KafkaError: misuse such as no transaction
        kind = TransactionError if "transaction" in str(exc).lower() else TransportError
        return kind(f"{what}: {exc}")
    if isinstance(exc, aiokafka.errors.KafkaError) and getattr(exc, "retriable", False):
        return TransientTransportError(f"{what}: {exc}")
    return TransportError(f"{what}: {exc}")


# IllegalOperation is aiokafka's misuse error and does not derive from KafkaError.
_AIOKAFKA_ERRORS = (KafkaError, IllegalOperation, OSError)


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Translate aiokafka errors raised inside the block (sync or async code)."""
    try:
        yield
    except _AIOKAFKA_ERRORS as exc:
        raise translate(exc, what) from exc


async def _call(what: str, fn: Callable[[], Awaitable[T]]) -> T:
    with _translated(what):
        return await fn()


def _record(msg: Any) -> Record:
    return Record(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        timestamp_ms=msg.timestamp,
        key=msg.key,
        value=msg.value,
        headers=_headers(msg.headers),
    )


def _headers(raw: Any) -> tuple[tuple[str, bytes], ...]:
    """aiokafka's headers as ours; a null header value becomes ``b""``. Runs per record:
    the common case (all values bytes) is one tuple copy."""
    if not raw:
        return ()
    headers = tuple(raw)
    for _, value in headers:
        if type(value) is not bytes:
            return tuple((k, b"" if v is None else bytes(v)) for k, v in headers)
    return headers


DEFAULT_MAX_REQUEST_SIZE = 1_048_576  # aiokafka's default max_request_size


def record_size(record: OutgoingRecord) -> int:
    """Bytes ``record`` takes alone in a batch: what ``max_request_size`` is checked against."""
    size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(
        record.key, record.value, list(record.headers)
    )
    return size


class KafkaProducerTransport:
    """Idempotent (``acks=all``) aiokafka producer behind :class:`ProducerTransport`."""

    def __init__(self, settings: KafkaSettings, **options: Any) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_list,
            client_id=settings.client_id,
            security_protocol=settings.security_protocol,
            request_timeout_ms=settings.request_timeout_ms,
            acks="all",
            enable_idempotence=True,
            **options,
        )
        self.max_request_size = int(options.get("max_request_size", DEFAULT_MAX_REQUEST_SIZE))
        self._partitioner = DefaultPartitioner()
        self._by_key: dict[tuple[int, bytes], int] = {}
        self._parts: dict[str, tuple[Any, list[int]]] = {}
        self._txn_capable = options.get("transactional_id") is not None
        self._in_transaction = False
        self._buffer = EnqueueBuffer(
            create_batch=self._producer.create_batch,
            send_batch=self._send_batch,
            translate=translate,
            check_size=self._check_size,
        )

    async def start(self) -> None:
        await _call("start producer", self._producer.start)

    async def stop(self) -> None:
        try:
            await self._buffer.drain()
        finally:
            await _call("stop producer", self._producer.stop)

    async def _partitions(self, topic: str) -> list[int]:
        """The topic's partitions. A topic the cluster's metadata lacks fails at once with
        one TopicError: aiokafka would wait ``request_timeout_ms`` for it, logging an error
        for every metadata refresh."""
        client = self._producer.client
        if client.cluster.partitions_for_topic(topic) is None:
            cluster = await client.fetch_all_metadata()  # names no topic: never auto-creates
            if topic not in cluster.topics():
                raise TopicError(
                    f"send to {topic}: topic {topic!r} does not exist; create it first "
                    f"(streaming topics ensure --topic {topic})"
                )
        return sorted(await self._producer.partitions_for(topic))

    async def _check_partition(self, record: OutgoingRecord) -> None:
        """The topic must exist; aiokafka only asserts an explicit partition exists, say it
        as a TopicError."""
        parts = await self._partitions(record.topic)
        if record.partition is not None:
            self._partition(record, parts)

    async def send(self, record: OutgoingRecord) -> RecordMetadata:
        await self._buffer.drain()  # records enqueued before this one go first
        with _translated(f"send to {record.topic}"):
            await self._check_partition(record)
            fut = await self._producer.send(
                record.topic,
                value=record.value,
                key=record.key,
                headers=list(record.headers),
                partition=record.partition,
                timestamp_ms=record.timestamp_ms,
            )
            meta = await fut
        return RecordMetadata(meta.topic, meta.partition, meta.offset, meta.timestamp)

    async def enqueue(
        self, record: OutgoingRecord, *, settled: Settled | None = None
    ) -> asyncio.Future[RecordMetadata]:
        """Append to the partition's open batch (:mod:`._enqueue`); the record's future."""
        if self._txn_capable and not self._in_transaction:
            raise TransactionError(
                f"send to {record.topic}: a transactional producer can only send inside "
                "begin_transaction()/commit_transaction()"
            )
        parts = self._sorted_partitions(record.topic)
        if parts is None:
            with _translated(f"send to {record.topic}"):
                parts = await self._partitions(record.topic)
        return await self._buffer.add(record, self._partition(record, parts), settled)

    def _sorted_partitions(self, topic: str) -> list[int] | None:
        """The topic's partitions from the producer's current metadata (no I/O)."""
        known = self._producer.client.cluster.partitions_for_topic(topic)
        if known is None:
            return None
        cached = self._parts.get(topic)
        if cached is None or cached[0] is not known:
            cached = self._parts[topic] = (known, sorted(known))
        return cached[1]

    async def _send_batch(self, builder: Any, topic: str, partition: int) -> Any:
        return await self._producer.send_batch(builder, topic, partition=partition)

    async def send_many(self, records: Sequence[OutgoingRecord]) -> list[RecordMetadata]:
        """Send ``records`` as per-partition batches (aiokafka's batch API).

        One ``BatchBuilder`` per partition instead of a ``send()`` coroutine and a future
        per record: the same bytes and producer settings at about half the CPU per
        record. Each partition's batches are submitted in order (per-key order holds) by
        their own task, so a partition whose leader stalls (a paused broker) never holds
        back the others; if some partitions fail, :class:`PartialSendError` says which
        records were acknowledged.
        """
        if not records:
            return []
        await self._buffer.drain()  # records enqueued before these go first
        with _translated("send batch"):
            placed: list[tuple[tuple[str, int], int, Any]] = []  # (tp, batch no., append meta)
            batches: dict[tuple[str, int], list[Any]] = {}
            parts: dict[str, list[int]] = {}  # per call: partitions may be added meanwhile
            for r in records:
                if r.topic not in parts:
                    parts[r.topic] = await self._partitions(r.topic)
                tp = (r.topic, self._partition(r, parts[r.topic]))
                builders = batches.setdefault(tp, [])
                meta = None
                if builders:
                    meta = builders[-1].append(
                        timestamp=r.timestamp_ms, key=r.key, value=r.value, headers=list(r.headers)
                    )
                if meta is None:  # no open batch for the partition, or it is full
                    self._check_size(r)
                    builders.append(self._producer.create_batch())
                    meta = builders[-1].append(
                        timestamp=r.timestamp_ms, key=r.key, value=r.value, headers=list(r.headers)
                    )
                placed.append((tp, len(builders) - 1, meta))
        outcomes = await asyncio.gather(
            *(self._send_partition(tp, builders) for tp, builders in batches.items()),
            return_exceptions=True,
        )
        done = dict(zip(batches, outcomes, strict=True))
        out: list[RecordMetadata | None] = []
        errors: dict[int, TransportError] = {}
        for index, (tp, number, meta) in enumerate(placed):
            result = done[tp]
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result  # cancellation and the like
                errors[index] = (
                    result if isinstance(result, TransportError) else translate(result, "send")
                )
                out.append(None)
                continue
            batch = result[number]
            timestamp = meta.timestamp if batch.timestamp in (None, -1) else batch.timestamp
            out.append(
                RecordMetadata(batch.topic, batch.partition, batch.offset + meta.offset, timestamp)
            )
        if len(errors) == len(records):  # nothing landed: the plain error says it best
            raise next(iter(errors.values()))
        if errors:
            failed = sorted({f"{placed[i][0][0]}[{placed[i][0][1]}]" for i in errors})
            first = next(iter(errors.values()))
            raise PartialSendError.of(
                f"send batch: {len(errors)} of {len(records)} record(s) not acknowledged "
                f"(partitions {', '.join(failed)}): {first}; the others were; resend the "
                "failed ones",
                out,
                errors,
            ) from first
        return [m for m in out if m is not None]

    async def _send_partition(self, tp: tuple[str, int], builders: list[Any]) -> list[Any]:
        """Submit one partition's batches in order; their delivery metadata."""
        with _translated(f"send batch to {tp[0]}[{tp[1]}]"):
            futures = []
            for builder in builders:
                builder.close()
                futures.append(await self._producer.send_batch(builder, tp[0], partition=tp[1]))
            return list(await asyncio.gather(*futures))

    def _partition(self, record: OutgoingRecord, parts: list[int]) -> int:
        """The partition ``send()`` would pick: explicit, murmur2 of the key, or random."""
        if not parts:
            raise TopicError(f"send to {record.topic}: topic has no partitions")
        if record.partition is not None:
            if record.partition not in parts:
                raise TopicError(
                    f"send to {record.topic}: partition {record.partition} does not exist "
                    f"(it has {len(parts)})"
                )
            return record.partition
        if record.key is None:
            return random.choice(parts)
        cache_key = (len(parts), record.key)
        partition = self._by_key.get(cache_key)
        if partition is None:
            if len(self._by_key) >= _KEY_CACHE_SIZE:
                self._by_key.clear()
            partition = self._partitioner(record.key, parts, parts)
            self._by_key[cache_key] = partition
        return partition

    def _check_size(self, record: OutgoingRecord) -> None:
        """A record alone over ``max_request_size`` fails as ``send()`` would fail it."""
        size = record_size(record)
        if size > self.max_request_size:
            raise TransportError(
                f"send to {record.topic}: record of {size} bytes exceeds max_request_size "
                f"({self.max_request_size}); split the payload or raise the limit"
            )

    async def flush(self) -> None:
        await self._buffer.drain()
        await _call("flush", self._producer.flush)

    async def _transactional(self, what: str, fn: Callable[[], Awaitable[None]]) -> None:
        # A fenced producer's state machine raises a bare AssertionError ("Invalid state
        # transition ... FATAL_ERROR") from aiokafka; it means the same as ProducerFenced.
        try:
            await _call(what, fn)
        except AssertionError as exc:
            raise TransactionError(f"{what}: producer is in a fatal state ({exc})") from exc

    async def begin_transaction(self) -> None:
        await self._transactional("begin transaction", self._producer.begin_transaction)
        self._in_transaction = True

    async def commit_transaction(self) -> None:
        await self._buffer.drain()  # enqueued records belong to the transaction
        self._in_transaction = False
        await self._transactional("commit transaction", self._producer.commit_transaction)

    async def abort_transaction(self) -> None:
        self._in_transaction = False
        self._buffer.fail_all(TransactionError("send: the transaction was aborted"))
        await self._transactional("abort transaction", self._producer.abort_transaction)

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group_id: str
    ) -> None:
        payload = {_ktp(tp): off for tp, off in offsets.items()}
        await _call(
            "send offsets to transaction",
            lambda: self._producer.send_offsets_to_transaction(payload, group_id),
        )


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        assigned: RebalanceCallback | None,
        revoked: RebalanceCallback | None,
        on_generation: Callable[[], None],
    ):
        self._assigned = assigned
        self._revoked = revoked
        self._on_generation = on_generation

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if self._revoked is not None:
            await self._revoked(sorted(_tp(t) for t in revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._on_generation()
        if self._assigned is not None:
            await self._assigned(sorted(_tp(t) for t in assigned))


class KafkaConsumerTransport:
    """aiokafka consumer with auto-commit off behind :class:`ConsumerTransport`."""

    def __init__(self, settings: KafkaSettings, **options: Any) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_list,
            security_protocol=settings.security_protocol,
            request_timeout_ms=settings.request_timeout_ms,
            enable_auto_commit=False,
            **options,
        )
        # (generation, member id) of the current assignment under group management.
        self._fence: tuple[int, str] | None = None
        self._request_timeout_s = settings.request_timeout_ms / 1000

    def _member(self) -> tuple[int, str]:
        coordinator = self._consumer._coordinator
        return (coordinator.generation, coordinator.member_id)

    def _capture_generation(self) -> None:
        self._fence = self._member()

    async def start(self) -> None:
        await _call("start consumer", self._consumer.start)
        # Let the internal tasks start() created run their first step: aiokafka's
        # group-less coordinator re-raises CancelledError from close() when its task is
        # cancelled before it ever ran (a consumer stopped right after start).
        await asyncio.sleep(0)

    async def stop(self) -> None:
        await _call("stop consumer", self._consumer.stop)

    def subscribe(
        self,
        topics: Sequence[str],
        *,
        on_assigned: RebalanceCallback | None = None,
        on_revoked: RebalanceCallback | None = None,
    ) -> None:
        with _translated(f"subscribe to {list(topics)}"):
            self._consumer.subscribe(
                list(topics),
                listener=_Listener(on_assigned, on_revoked, self._capture_generation),
            )

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        with _translated("assign partitions"):
            self._consumer.assign([_ktp(tp) for tp in partitions])

    def assignment(self) -> set[TopicPartition]:
        return {_tp(t) for t in self._consumer.assignment()}

    async def poll(
        self, timeout_ms: int = 1000, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]:
        with _translated("poll"):
            batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        return {_tp(tp): [_record(m) for m in msgs] for tp, msgs in batches.items() if msgs}

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit as the member of the generation that was assigned the partitions.

        aiokafka commits with whatever generation its coordinator holds when it builds
        the request; after a lost session that is -1 (no member), which the broker
        accepts from anyone once the group is empty, so a zombie's revoke would rewind
        the group. Kafka's own clients refuse such commits; so do we: under the commit
        lock, with no await between the check and the request, a changed generation
        raises CommitFencedError, and the request carries the generation, so the broker
        refuses it if the group moved on (UnknownMemberId/IllegalGeneration, also
        CommitFencedError). aiokafka has no public call for this, hence its internals;
        retriable errors (a moved coordinator) are retried until the request timeout, as
        aiokafka's own commit does.
        """
        if not offsets:
            return
        payload = {_ktp(tp): off for tp, off in offsets.items()}
        if self._fence is None:  # assign() mode: a plain (member-less) commit
            await _call("commit offsets", lambda: self._consumer.commit(payload))
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._request_timeout_s
        attempt = 0
        while True:
            attempt += 1
            try:
                with _translated("commit offsets"):
                    await self._commit_as_member(commit_structure_validate(payload))
                return
            except TransportError as exc:
                if not exc.retriable or loop.time() > deadline:
                    raise
            await asyncio.sleep(COORDINATOR_BACKOFF.delay_s(attempt))

    async def _commit_as_member(self, offsets: Mapping[Any, Any]) -> None:
        coordinator = self._consumer._coordinator
        await coordinator.ensure_coordinator_known()
        async with coordinator._commit_lock:
            current = self._member()
            subscription = self._consumer._subscription.subscription
            assignment = subscription.assignment if subscription is not None else None
            if self._fence is None or current != self._fence or assignment is None:
                generation = self._fence[0] if self._fence is not None else -1
                raise CommitFencedError(
                    f"commit offsets: this consumer lost group generation {generation} "
                    f"(now {current[0]}); its partitions were reassigned, so its offsets "
                    "are not committed and the records go to the new owner"
                )
            await coordinator._do_commit_offsets(assignment, offsets)

    async def committed(self, tp: TopicPartition) -> int | None:
        result: int | None = await _call("committed", lambda: self._consumer.committed(_ktp(tp)))
        return result

    async def position(self, tp: TopicPartition) -> int:
        result: int = await _call("position", lambda: self._consumer.position(_ktp(tp)))
        return result

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if offset < 0:
            raise TransportError(f"seek: offset {offset} for {tp} is negative")
        with _translated(f"seek {tp}"):
            self._consumer.seek(_ktp(tp), offset)

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        await _call("seek", lambda: self._consumer.seek_to_beginning(*(_ktp(t) for t in tps)))

    async def seek_to_end(self, *tps: TopicPartition) -> None:
        await _call("seek", lambda: self._consumer.seek_to_end(*(_ktp(t) for t in tps)))

    def pause(self, *tps: TopicPartition) -> None:
        with _translated("pause"):
            self._consumer.pause(*(_ktp(t) for t in tps))

    def resume(self, *tps: TopicPartition) -> None:
        with _translated("resume"):
            self._consumer.resume(*(_ktp(t) for t in tps))

    def paused(self) -> set[TopicPartition]:
        return {_tp(t) for t in self._consumer.paused()}

    async def beginning_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        result = await _call(
            "beginning offsets", lambda: self._consumer.beginning_offsets([_ktp(t) for t in tps])
        )
        return {_tp(k): v for k, v in result.items()}

    async def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        result = await _call(
            "end offsets", lambda: self._consumer.end_offsets([_ktp(t) for t in tps])
        )
        return {_tp(k): v for k, v in result.items()}

    async def offsets_for_times(
        self, timestamps: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int | None]:
        payload = {_ktp(tp): ts for tp, ts in timestamps.items()}
        result = await _call("offsets for times", lambda: self._consumer.offsets_for_times(payload))
        return {_tp(k): (v.offset if v is not None else None) for k, v in result.items()}

    async def partitions_for(self, topic: str) -> set[int]:
        with _translated(f"partitions for {topic}"):
            parts = self._consumer.partitions_for_topic(topic)
            if parts is None:
                await self._consumer._client.force_metadata_update()
                parts = self._consumer.partitions_for_topic(topic)
        if not parts:
            raise TopicError(f"topic {topic!r} does not exist")
        return set(parts)


class KafkaAdminTransport:
    """aiokafka admin client behind :class:`AdminTransport`."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.bootstrap_list,
            client_id=f"{settings.client_id}-admin",
            security_protocol=settings.security_protocol,
            request_timeout_ms=settings.request_timeout_ms,
        )

    async def start(self) -> None:
        await _call("start admin client", self._admin.start)

    async def stop(self) -> None:
        await _call("stop admin client", self._admin.close)

    async def describe_cluster(self) -> ClusterInfo:
        meta = await self._retried("describe cluster", self._admin.describe_cluster)
        brokers = tuple(
            f"{b['host']}:{b['port']}" for b in sorted(meta["brokers"], key=lambda b: b["node_id"])
        )
        return ClusterInfo(meta.get("cluster_id"), meta.get("controller_id"), brokers)

    async def list_topics(self) -> set[str]:
        return set(await self._retried("list topics", self._admin.list_topics))

    async def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create the missing topics and wait until every one has leaders.

        Topics that already exist are not sent to the controller at all: a CreateTopics
        request goes to one broker, and a process starting while that broker is down
        (a registry restarted during a broker outage) must not fail on topics it only
        needs to read.
        """
        if not specs:
            return
        existing = await self.list_topics()
        missing = [s for s in specs if s.name not in existing]
        if missing:
            await self._create(missing)
        await self._wait_for_metadata([s.name for s in specs])

    async def _create(self, specs: Sequence[TopicSpec]) -> None:
        brokers = len((await self.describe_cluster()).brokers)
        replication, isr = (
            self._settings.default_replication_factor,
            self._settings.min_insync_replicas,
        )
        sized = [s.sized_for(brokers, replication=replication, min_insync=isr) for s in specs]
        new = [
            NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=dict(s.config))
            for s in sized
        ]
        response = await self._retried("create topics", lambda: self._admin.create_topics(new))
        for entry in response.topic_errors:
            name, code = entry[0], entry[1]
            if code in (0, _TOPIC_ALREADY_EXISTS):
                continue
            message = entry[2] if len(entry) > 2 else ""
            raise TopicError(f"cannot create topic {name!r}: {for_code(code).__name__} {message}")

    async def _wait_for_metadata(self, names: Sequence[str], timeout_s: float = 30.0) -> None:
        """Block until every broker's metadata shows the topics with leaders."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        wanted = set(names)
        while True:
            topics = await self._retried(
                "describe topics", lambda: self._admin.describe_topics(list(wanted))
            )
            ready = {
                t["topic"]
                for t in topics
                if t["error_code"] == 0
                and t["partitions"]
                and all(p["leader"] >= 0 for p in t["partitions"])
            }
            if ready >= wanted:
                return
            if loop.time() > deadline:
                raise TopicError(
                    f"topics {sorted(wanted - ready)} have no leader after {timeout_s}s"
                )
            await asyncio.sleep(0.05)  # poll

    async def delete_topics(self, names: Sequence[str]) -> None:
        if names:
            await _call("delete topics", lambda: self._admin.delete_topics(list(names)))

    async def partition_count(self, topic: str) -> int:
        topics = await self._retried("describe topic", lambda: self._admin.describe_topics([topic]))
        for t in topics:
            if t["topic"] == topic and t["error_code"] == 0:
                return len(t["partitions"])
        raise TopicError(f"topic {topic!r} does not exist")

    async def describe_topic_config(self, topic: str) -> dict[str, str]:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic)
        responses = await _call(
            "describe configs", lambda: self._admin.describe_configs([resource])
        )
        out: dict[str, str] = {}
        for response in responses:
            for res in response.resources:
                error_code, resources_entries = res[0], res[4]
                if error_code:
                    raise TopicError(
                        f"cannot describe topic {topic!r}: {for_code(error_code).__name__}"
                    )
                for entry in resources_entries:
                    out[entry[0]] = entry[1]
        return out

    async def alter_topic_config(self, topic: str, config: Mapping[str, str]) -> None:
        """Set ``config`` on the topic. Kafka's legacy AlterConfigs replaces all
        non-default values, so the current overrides are merged in first."""
        resource = ConfigResource(ConfigResourceType.TOPIC, topic)
        current = await _call(
            "describe configs",
            lambda: self._admin.describe_configs([resource], include_synonyms=True),
        )
        merged: dict[str, str] = {}
        for response in current:
            for res in response.resources:
                for entry in res[4]:
                    # (name, value, read_only, source, is_sensitive, synonyms) for v1+
                    name, value, source = entry[0], entry[1], entry[3]
                    if source == 1 and value is not None:  # DYNAMIC_TOPIC_CONFIG
                        merged[name] = value
        merged.update(config)
        await _call(
            "alter configs",
            lambda: self._admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, merged)]
            ),
        )

    async def list_groups(self) -> list[str]:
        groups = await _call("list groups", self._admin.list_consumer_groups)
        return sorted(g[0] for g in groups)

    async def _retried(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """``fn`` retried on retriable errors until the request timeout: the group
        coordinator is not there yet (a fresh broker creates ``__consumer_offsets`` on
        first use), or the broker a request went to is down (aiokafka's admin picks one
        at random; the next try picks again)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.request_timeout_ms / 1000
        attempt = 0
        while True:
            attempt += 1
            try:
                return await _call(what, fn)
            except TransportError as exc:
                delay = COORDINATOR_BACKOFF.delay_s(attempt)
                if not exc.retriable or loop.time() + delay > deadline:
                    raise
            await asyncio.sleep(delay)

    async def describe_group(self, group_id: str) -> GroupInfo:
        responses = await self._retried(
            "describe group", lambda: self._admin.describe_consumer_groups([group_id])
        )
        for response in responses:
            for group in response.groups:
                # (error_code, group_id, state, protocol_type, protocol, members, ...)
                if group[1] == group_id:
                    ids = tuple(sorted(str(member[0]) for member in group[5]))
                    return GroupInfo(group_id, state=group[2], members=len(ids), member_ids=ids)
        return GroupInfo(group_id=group_id, state="Dead", members=0)

    async def group_offsets(self, group_id: str) -> dict[TopicPartition, int]:
        result = await self._retried(
            "group offsets", lambda: self._admin.list_consumer_group_offsets(group_id)
        )
        return {_tp(tp): om.offset for tp, om in result.items() if om.offset >= 0}

    async def alter_group_offsets(
        self, group_id: str, offsets: Mapping[TopicPartition, int]
    ) -> None:
        """Commit offsets for an *empty* group through a member-less consumer."""
        info = await self.describe_group(group_id)
        if info.members:
            raise GroupNotEmptyError(
                f"alter offsets of group {group_id!r}: the group has {info.members} active "
                "member(s); stop its consumers first"
            )
        consumer = KafkaConsumerTransport(self._settings, group_id=group_id)
        await consumer.start()
        try:
            consumer.assign(sorted(offsets))
            await consumer.commit(offsets)
        finally:
            await consumer.stop()


class KafkaTransport:
    """Factory for real-Kafka producer, consumer and admin transports."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings

    def producer(
        self,
        *,
        transactional_id: str | None = None,
        linger_ms: int = 5,
        max_batch_size: int = 1_048_576,
        compression: str | None = None,
    ) -> KafkaProducerTransport:
        return KafkaProducerTransport(
            self.settings,
            transactional_id=transactional_id,
            linger_ms=linger_ms,
            max_batch_size=max_batch_size,
            compression_type=compression,
        )

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
    ) -> KafkaConsumerTransport:
        return KafkaConsumerTransport(
            self.settings,
            group_id=group_id,
            auto_offset_reset=auto_offset_reset,
            isolation_level=isolation_level,
            max_poll_records=max_poll_records,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            client_id=client_id or self.settings.client_id,
        )

    def admin(self) -> KafkaAdminTransport:
        return KafkaAdminTransport(self.settings)


__all__ = [
    "DEFAULT_MAX_REQUEST_SIZE",
    "KafkaAdminTransport",
    "KafkaConsumerTransport",
    "KafkaProducerTransport",
    "KafkaTransport",
    "record_size",
    "translate",
]
