"""A consumer process killed with SIGKILL mid-stream loses nothing when restarted."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from streaming.clients.producer import EventProducer
from streaming.events import OrderPlaced
from streaming.events.fake import fake_events
from streaming.serde.client import SchemaRegistryClient
from streaming.testing import eventually
from streaming.testing.plugin import TopicFactory
from streaming.transport.kafka import KafkaTransport

PROC = Path(__file__).with_name("consumer_proc.py")
EVENTS = 3000


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


async def test_sigkill_mid_stream_then_restart_loses_nothing(
    kafka_transport: KafkaTransport,
    topic_factory: TopicFactory,
    schema_registry: SchemaRegistryClient,
    registry_url: str,
    kafka_admin,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = await topic_factory(partitions=3)
    group = f"crash-{uuid.uuid4().hex[:6]}"
    events = list(fake_events(OrderPlaced, EVENTS, rng=random.Random(3)))
    async with EventProducer(kafka_transport, schema_registry) as producer:
        await producer.send_many(topic, events)
    out = tmp_path / "handled.txt"
    args = [
        sys.executable,
        str(PROC),
        kafka_transport.settings.bootstrap_servers,
        registry_url,
        topic,
        group,
        str(out),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}

    first = await asyncio.create_subprocess_exec(*args, env=env)
    try:
        await eventually(
            lambda: len(_lines(out)) >= EVENTS // 3, timeout_s=60, what="a third handled"
        )
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    handled_before_kill = len(_lines(out))
    assert handled_before_kill < EVENTS, "the kill did not land mid-stream"

    second = await asyncio.create_subprocess_exec(*args, env=env)
    try:
        await eventually(
            lambda: set(_lines(out)) >= {str(e.event_id) for e in events}, timeout_s=90, what="all"
        )
    finally:
        second.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(second.wait(), 30)
    assert code == 0, "SIGTERM must stop the consumer gracefully"

    counts = Counter(_lines(out))
    duplicates = sum(n - 1 for n in counts.values())
    with capsys.disabled():
        sys.stderr.write(
            f"\n[measured] SIGKILL after {handled_before_kill}/{EVENTS} handled: "
            f"0 lost, {duplicates} duplicate(s) redelivered\n"
        )
    assert set(counts) == {str(e.event_id) for e in events}
    # Duplicates only come from the uncommitted window: at most one poll batch per partition.
    assert duplicates <= 3 * 100
    offsets = await kafka_admin.group_offsets(group)
    assert sum(offsets[tp] for tp in offsets if tp.topic == topic) == EVENTS
    present = await kafka_admin.list_topics()
    await kafka_admin.delete_topics([t for t in present if t.startswith(topic + ".")])
