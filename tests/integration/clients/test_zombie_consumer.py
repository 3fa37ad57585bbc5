"""A consumer that lost its group generation never rewinds the group's committed offsets.

Issue 12, defect 1: member A is SIGSTOPped past its session timeout, member B takes
over and commits to the log end, B stops (the group is empty) and A is resumed. A's
revoke path used to commit the offsets it computed before it was stopped, with
generation -1, which an empty group accepts: committed offsets moved backwards.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as CTP

from streaming.events import OrderPlaced
from streaming.fake_events import fake_events
from streaming.producer import EventProducer
from streaming.serde.client import SchemaRegistryClient
from streaming.testing.plugin import TopicFactory
from streaming.transport.base import AdminTransport, TopicPartition
from streaming.transport.kafka import KafkaTransport
from tests.integration.waiting import until

PROC = Path(__file__).with_name("consumer_proc.py")
PARTITIONS = 6
EVENTS = 3000
WORK_S = "0.01"  # per event: a poll batch takes long enough for SIGSTOP to land inside it


class CommitHistory:
    """Committed offsets of a group, read every few ms by an independent client in a
    thread; remembers every value each partition went through."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self._client = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        )
        self._tps = [CTP(topic, p) for p in range(PARTITIONS)]
        self.values: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for tp in self._client.committed(self._tps, timeout=10):
                seen = self.values[tp.partition]
                if tp.offset >= 0 and (not seen or seen[-1] != tp.offset):
                    seen.append(tp.offset)
            self._stop.wait(0.01)  # poll

    def latest(self) -> dict[int, int]:
        return {p: v[-1] for p, v in self.values.items() if v}

    def moved_back(self) -> dict[int, list[int]]:
        return {
            p: v for p, v in self.values.items() if any(b < a for a, b in itertools.pairwise(v))
        }

    def __enter__(self) -> CommitHistory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._client.close()


def _lines(path: Path) -> int:
    return len(path.read_text().split()) if path.exists() else 0


async def test_a_resumed_zombie_never_moves_committed_offsets_back(
    kafka_transport: KafkaTransport,
    kafka_admin: AdminTransport,
    topic_factory: TopicFactory,
    schema_registry: SchemaRegistryClient,
    registry_url: str,
    tmp_path: Path,
) -> None:
    topic = await topic_factory(partitions=PARTITIONS)
    group = f"zombie-{uuid.uuid4().hex[:6]}"
    bootstrap = kafka_transport.settings.bootstrap_servers
    async with EventProducer(kafka_transport, schema_registry) as producer:
        events = list(fake_events(OrderPlaced, EVENTS, rng=random.Random(12), keys=600))
        for i in range(0, EVENTS, 1000):
            await producer.send_many(topic, events[i : i + 1000])
    reader = kafka_transport.consumer(group_id=None)
    await reader.start()
    try:
        log_end = await reader.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
    finally:
        await reader.stop()
    end = {tp.partition: offset for tp, offset in log_end.items()}

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    out_a, out_b = tmp_path / "a.txt", tmp_path / "b.txt"

    def start(out: Path) -> subprocess.Popen[bytes]:
        args = [sys.executable, str(PROC), bootstrap, registry_url, topic, group, str(out), WORK_S]
        with open(out.with_suffix(".log"), "wb") as log:
            return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)

    procs: list[subprocess.Popen[bytes]] = []
    with CommitHistory(bootstrap, group, topic) as history:
        try:
            a = start(out_a)
            procs.append(a)
            await until(lambda: _lines(out_a) >= 100, 60, "member A handling events")
            b = start(out_b)
            procs.append(b)
            await until(lambda: _lines(out_b) >= 50, 60, "member B sharing the partitions")
            handled = _lines(out_a)
            await until(lambda: _lines(out_a) > handled, 30, "member A busy")
            a.send_signal(signal.SIGSTOP)  # mid-batch: A holds offsets it has not committed
            await until(lambda: history.latest() == end, 60, "B committing to the log end")

            b.send_signal(signal.SIGTERM)  # the group becomes empty
            assert await asyncio.to_thread(b.wait, 30) == 0
            a.send_signal(signal.SIGCONT)

            async def a_rejoined() -> bool:
                info = await kafka_admin.describe_group(group)
                return info.state == "Stable" and info.members == 1

            await until(a_rejoined, 60, "A rejoining the empty group alone")
            a.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(a.wait, 30) == 0
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGCONT)
                    proc.kill()
                    proc.wait()
    assert history.moved_back() == {}, "committed offsets moved backwards"
    assert history.latest() == end
    present = await kafka_admin.list_topics()
    await kafka_admin.delete_topics([t for t in present if t.startswith(topic + ".")])
