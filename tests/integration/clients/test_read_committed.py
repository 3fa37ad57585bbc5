"""Every reader in the product sees committed transactions only (issue 17, item 1).

An independent confluent-kafka transactional producer interleaves ten aborted and ten
committed transactions on one partition (aborted first, so the log ends with a committed
record); each reader is then run until it has seen that last record and must have seen
exactly the committed ones, in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import uuid

from streaming.clients.bus import KafkaEventBus
from streaming.clients.consumer import EventConsumer
from streaming.clients.producer import EventProducer
from streaming.clients.retry import FailureInfo, dlq_topic, failure_headers
from streaming.config import KafkaSettings
from streaming.events import OrderPlaced
from streaming.events.fake import fake_events
from streaming.replay import CompactedTable, DlqRedriver, RangeReplayer, SnapshotStore
from streaming.replay.snapshots import SNAPSHOTS_TOPIC, SNAPSHOTS_TOPIC_CONFIG
from streaming.serde.client import SchemaRegistryClient
from streaming.testing import eventually
from streaming.testing.plugin import TopicFactory
from streaming.transport.base import OutgoingRecord
from streaming.transport.kafka import KafkaTransport
from tests.integration.replay.conftest import read_all
from tests.integration.transactional import write_aborted_and_committed

PAIRS = 10


async def _orders(
    transport: KafkaTransport, registry: SchemaRegistryClient, topic: str
) -> list[str]:
    """Write the interleaved transactions of typed orders; the committed event ids."""
    builder = EventProducer(transport, registry)  # serializes only; never started
    events = list(fake_events(OrderPlaced, 2 * PAIRS, rng=random.Random(17)))
    records = [await builder.build(topic, e, partition=0) for e in events]
    committed, aborted = records[1::2], records[0::2]
    await asyncio.to_thread(
        write_aborted_and_committed, transport.settings.bootstrap_servers, committed, aborted
    )
    return [str(e.event_id) for e in events[1::2]]


async def test_event_consumer_hands_handlers_committed_events_only(
    kafka_transport: KafkaTransport,
    topic_factory: TopicFactory,
    schema_registry: SchemaRegistryClient,
    cleanup: list[str],
) -> None:
    topic = await topic_factory(1, prefix="rc-consumer")
    cleanup.append(topic)
    committed = await _orders(kafka_transport, schema_registry, topic)
    consumer = EventConsumer(
        kafka_transport,
        schema_registry,
        topics=[topic],
        group_id=f"rc-{uuid.uuid4().hex[:6]}",
        poll_timeout_ms=100,
    )
    handled: list[str] = []

    @consumer.handler(OrderPlaced)
    async def handle(event: OrderPlaced) -> None:
        handled.append(str(event.event_id))

    task = asyncio.create_task(consumer.run())
    try:
        await eventually(
            lambda: committed[-1] in handled, timeout_s=60, what="the last committed event"
        )
    finally:
        consumer.request_stop()
        await task
    assert handled == committed


async def test_event_bus_subscribers_get_committed_events_only(
    kafka_settings: KafkaSettings,
    topic_factory: TopicFactory,
    schema_registry: SchemaRegistryClient,
    kafka_transport: KafkaTransport,
    cleanup: list[str],
) -> None:
    topic = await topic_factory(1, prefix="rc-bus")
    cleanup.append(topic)
    committed = await _orders(kafka_transport, schema_registry, topic)
    bus = KafkaEventBus.from_settings(
        kafka_settings,
        schema_registry,
        group_id=f"rc-bus-{uuid.uuid4().hex[:6]}",
        topic_for=lambda cls: topic,
    )
    handled: list[str] = []

    async def handle(event: OrderPlaced) -> None:
        handled.append(str(event.event_id))

    await bus.subscribe(OrderPlaced, handle)
    async with bus:
        await eventually(
            lambda: committed[-1] in handled, timeout_s=60, what="the last committed event"
        )
    assert handled == committed


async def test_streaming_consume_prints_committed_events_only(
    kafka_transport: KafkaTransport,
    topic_factory: TopicFactory,
    schema_registry: SchemaRegistryClient,
    registry_url: str,
) -> None:
    topic = await topic_factory(1, prefix="rc-cli")
    committed = await _orders(kafka_transport, schema_registry, topic)
    # --max 10: the first ten records such a reader sees; an aborted one would be among them.
    args = ["--topic", topic, "--from-beginning", "--json", "--max", str(PAIRS)]
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "streaming", "consume", *args, "--idle-timeout-s", "30"],
        env={
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_transport.settings.bootstrap_servers,
            "REGISTRY_URL": registry_url,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    docs = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [d["value"]["metadata"]["event_id"] for d in docs] == committed


async def test_replay_redrive_and_tables_read_committed_records_only(
    kafka_transport: KafkaTransport, topic_factory: TopicFactory
) -> None:
    source = await topic_factory(1, prefix="rc-replay")
    group = f"rc-{uuid.uuid4().hex[:6]}"
    dlq = await topic_factory(1, name=dlq_topic(source, group))
    info = FailureInfo(source, 0, 0, 1_000, 3, group, "ValueError", "bad", "trace", 2_000)

    def record(topic: str, i: int) -> OutgoingRecord:
        headers = failure_headers(info, base=(("event-id", f"e-{i}".encode()),))
        return OutgoingRecord(topic, f"v-{i}".encode(), key=f"k-{i}".encode(), headers=headers)

    committed_ids = [f"e-{i}".encode() for i in range(1, 2 * PAIRS, 2)]
    bootstrap = kafka_transport.settings.bootstrap_servers
    for topic in (source, dlq):
        records = [record(topic, i) for i in range(2 * PAIRS)]
        await asyncio.to_thread(
            write_aborted_and_committed, bootstrap, records[1::2], records[0::2]
        )
    store = SnapshotStore(
        kafka_transport,
        topic=await topic_factory(1, prefix=SNAPSHOTS_TOPIC, config=dict(SNAPSHOTS_TOPIC_CONFIG)),
    )

    target = await topic_factory(1, prefix="rc-replay-dst")
    await RangeReplayer(kafka_transport, store=store).replay(source, target=target)
    replayed = await read_all(kafka_transport, target, read_committed=False)
    assert [r.header("event-id") for r in replayed] == committed_ids

    table = await CompactedTable(kafka_transport, source).start()
    try:
        assert sorted(table) == sorted(f"k-{i}".encode() for i in range(1, 2 * PAIRS, 2))
    finally:
        await table.stop()

    redriver = DlqRedriver(kafka_transport, source, group, store=store)
    result = await redriver.redrive(dry_run=False)
    assert result.redriven == PAIRS
    moved = await read_all(kafka_transport, source, read_committed=True)
    assert [r.header("event-id") for r in moved][PAIRS:] == committed_ids

    listed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "streaming", "dlq", "list", "-t", source, "-g", group, "--json"],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["total"] == PAIRS
