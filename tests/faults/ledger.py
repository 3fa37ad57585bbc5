"""Accounting for every event by id, and the committed-offset history of a group.

Both read Kafka with independent confluent-kafka clients, never through the code under
test: the log is read back partition by partition up to its high watermark, and
committed offsets are sampled (OffsetFetch) on a thread of their own by a consumer that
never joins the group.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, TopicPartition


@dataclass
class Tally:
    """Acknowledged ids against the ids delivered (a log read back, or handler calls)."""

    acknowledged: set[str] = field(default_factory=set)
    delivered: Counter[str] = field(default_factory=Counter)

    @property
    def lost(self) -> set[str]:
        return self.acknowledged - set(self.delivered)

    @property
    def duplicated(self) -> int:
        """Deliveries beyond the first, summed over ids."""
        return sum(n - 1 for n in self.delivered.values() if n > 1)


def read_log(bootstrap: str, topic: str, timeout_s: float = 60.0) -> Counter[str]:
    """``event-id`` header -> how often it is in ``topic``, read to the high watermarks."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "faults-reader",  # never commits: assign() plus explicit offsets
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        todo = {}
        for p in parts:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > 0:
                todo[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in todo])
        seen: Counter[str] = Counter()
        deadline = time.monotonic() + timeout_s
        while todo:
            assert time.monotonic() < deadline, f"reading {topic} back: {todo} left"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                continue  # partition EOF or a transient fetch error; the high mark decides
            event_id = dict(msg.headers() or []).get("event-id")
            if event_id is not None:
                seen[event_id.decode()] += 1
            if msg.offset() + 1 >= todo.get(msg.partition(), 0):
                todo.pop(msg.partition(), None)
        return seen
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "faults-reader"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in parts
        }
    finally:
        consumer.close()


@dataclass(frozen=True)
class Backstep:
    """A committed offset lower than the one sampled before it."""

    partition: int
    before: int
    after: int
    at_s: float


class OffsetMonitor:
    """Samples a group's committed offsets (every ``interval_s``) until :meth:`stop`.

    Offsets must only grow without an operator reset; every step back is kept.
    """

    def __init__(self, bootstrap: str, group: str, topic: str, interval_s: float = 0.1) -> None:
        # A consumer of the group that never joins it: committed() is a plain OffsetFetch.
        self._reader: Consumer | None = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        )
        self._partitions: list[TopicPartition] = []
        self.group = group
        self.topic = topic
        self._interval_s = interval_s
        self.history: dict[int, list[tuple[float, int]]] = {}
        self.backsteps: list[Backstep] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"offsets-{group}", daemon=True)

    def __enter__(self) -> OffsetMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop sampling after one last sample (idempotent)."""
        if self._reader is None:
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self.sample()  # the final state, taken after everything stopped
        self._reader.close()
        self._reader = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._interval_s)  # poll

    def sample(self) -> None:
        if self._reader is None:
            return
        try:
            if not self._partitions:
                meta = self._reader.list_topics(self.topic, timeout=5).topics[self.topic]
                self._partitions = [TopicPartition(self.topic, p) for p in sorted(meta.partitions)]
            parts = self._reader.committed(self._partitions, timeout=5)
        except KafkaException:
            return  # coordinator moving: the next sample will tell
        now = time.monotonic()
        for tp in parts:
            if tp.topic != self.topic or tp.offset < 0:
                continue
            series = self.history.setdefault(tp.partition, [])
            if series and tp.offset < series[-1][1]:
                self.backsteps.append(Backstep(tp.partition, series[-1][1], tp.offset, now))
            if not series or series[-1][1] != tp.offset:
                series.append((now, tp.offset))

    def latest(self) -> dict[int, int]:
        return {p: s[-1][1] for p, s in self.history.items() if s}

    def wait_committed(self, ends: dict[int, int], timeout_s: float, phase: str = "") -> None:
        """Until the group's committed offsets reached ``ends`` on every partition."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            latest = self.latest()
            if all(latest.get(p, 0) >= end for p, end in ends.items() if end > 0):
                return
            time.sleep(0.1)  # poll
        raise AssertionError(
            f"group {self.group} did not commit to the log end within {timeout_s}s"
            f"{' (' + phase + ')' if phase else ''}: "
            f"committed {self.latest()}, end {ends}"
        )

    def offsets_at(self, when: float) -> dict[int, int]:
        """The committed offsets as last sampled before ``when`` (time.monotonic())."""
        out = {}
        for p, series in self.history.items():
            before = [off for t, off in series if t <= when]
            if before:
                out[p] = before[-1]
        return out

    def recovery_s(self, fault_at: float, ends: dict[int, int]) -> float | None:
        """Seconds from ``fault_at`` until every partition that still had work then
        committed progress again (None if one never did)."""
        at_fault = self.offsets_at(fault_at)
        waits = []
        for p, end in ends.items():
            start = at_fault.get(p, 0)
            if start >= end:
                continue
            moved = [t for t, off in self.history.get(p, []) if t > fault_at and off > start]
            if not moved:
                return None
            waits.append(moved[0] - fault_at)
        return max(waits, default=0.0)

    def describe_backsteps(self) -> str:
        return "; ".join(f"p{b.partition}: {b.before} -> {b.after}" for b in self.backsteps)


def ids(events: Iterable[object]) -> set[str]:
    """The event ids of typed events (``event.metadata.event_id``)."""
    return {str(e.metadata.event_id) for e in events}  # type: ignore[attr-defined]
