"""The operator commands against a real broker: JSON output, CSV export, exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid

from typer.testing import CliRunner

from streaming.cli.offsets import app as offsets_app
from streaming.cli.replay import app as replay_app
from streaming.cli.table import app as table_app
from streaming.config import KafkaSettings, RegistrySettings
from streaming.events import AuditEvent, EventDeserializer
from streaming.serde.client import SchemaRegistryClient
from streaming.serde.context import SerializationContext
from streaming.serde.schema import Schema
from streaming.serde.wire import frame
from streaming.testing import eventually
from streaming.transport.base import OutgoingRecord, TopicPartition, TopicSpec
from streaming.transport.kafka import KafkaTransport

runner = CliRunner()


async def _setup(transport: KafkaTransport, topic: str, group: str) -> None:
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec(topic, 2, 1, {"cleanup.policy": "compact"})])
    await admin.stop()
    producer = transport.producer()
    await producer.start()
    await producer.send_many(
        [OutgoingRecord(topic, f"v{i}".encode(), key=f"k{i % 5}".encode()) for i in range(20)]
    )
    await producer.stop()
    admin = transport.admin()
    await admin.start()
    await admin.alter_group_offsets(
        group, {TopicPartition(topic, 0): 1, TopicPartition(topic, 1): 1}
    )
    await admin.stop()


async def _cleanup(transport: KafkaTransport, *topics: str) -> None:
    admin = transport.admin()
    await admin.start()
    await admin.delete_topics(list(topics))
    await admin.stop()


def test_offsets_table_and_replay_commands(kafka_settings: KafkaSettings) -> None:
    transport = KafkaTransport(kafka_settings)
    topic, group = f"cli-{uuid.uuid4().hex[:10]}", f"g-{uuid.uuid4().hex[:8]}"
    asyncio.run(_setup(transport, topic, group))
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers}
    try:
        snap = runner.invoke(offsets_app, ["snapshot", "-g", group, "-n", "s1", "--json"], env=env)
        assert snap.exit_code == 0, snap.output
        assert json.loads(snap.stdout)["name"] == "s1"
        listed = runner.invoke(offsets_app, ["list", "-g", group, "--json"], env=env)
        assert [s["name"] for s in json.loads(listed.stdout)] == ["s1"]

        plan = runner.invoke(
            offsets_app, ["reset", "-g", group, "--topic", topic, "--to-latest", "--json"], env=env
        )
        assert plan.exit_code == 0, plan.output
        assert json.loads(plan.stdout)["executed"] is False
        export = runner.invoke(
            offsets_app, ["reset", "-g", group, "--to-earliest", "--export"], env=env
        )
        assert export.stdout == f"{topic},0,0\n{topic},1,0\n"
        applied = runner.invoke(
            offsets_app,
            [
                "reset",
                "-g",
                group,
                "--from-snapshot",
                "s1",
                "--execute",
                "--audit",
                "log",
                "--json",
            ],
            env=env,
        )
        assert json.loads(applied.stdout)["executed"] is True

        dump = runner.invoke(table_app, ["dump", "--topic", topic, "--json"], env=env)
        assert dump.exit_code == 0, dump.output
        assert json.loads(dump.stdout) == {f"k{k}": f"v{15 + k}" for k in range(5)}

        copy = f"{topic}-copy"
        replayed = runner.invoke(
            replay_app,
            ["--topic", topic, "--to", copy, "--create-target", "--audit", "log", "--json"],
            env=env,
        )
        assert replayed.exit_code == 0, replayed.output
        assert json.loads(replayed.stdout)["written"] == 20
        deleted = runner.invoke(offsets_app, ["delete", "-g", group, "-n", "s1"], env=env)
        assert deleted.exit_code == 0
        missing = runner.invoke(
            offsets_app, ["reset", "-g", group, "--from-snapshot", "s1"], env=env
        )
        assert missing.exit_code == 2
        assert "offsets list" in missing.output
    finally:
        asyncio.run(_cleanup(transport, topic, f"{topic}-copy"))


async def _audit_events(
    transport: KafkaTransport, topic: str, registry_url: str, count: int
) -> list[AuditEvent]:
    registry = SchemaRegistryClient(RegistrySettings(url=registry_url))
    decoder = EventDeserializer(registry)
    consumer = transport.consumer()
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        events: list[AuditEvent] = []

        async def read() -> int:
            for records in (await consumer.poll(timeout_ms=500)).values():
                for record in records:
                    assert record.value is not None
                    event = await decoder.deserialize(
                        record.value, SerializationContext.for_record(record)
                    )
                    assert isinstance(event, AuditEvent)
                    events.append(event)
            return len(events)

        await eventually(
            read, until=lambda n: n >= count, timeout_s=30, what=f"{count} audit events"
        )
        return events
    finally:
        await consumer.stop()
        await registry.aclose()


def test_executed_reset_and_replay_are_published_to_the_audit_topic(
    kafka_settings: KafkaSettings, registry_url: str
) -> None:
    transport = KafkaTransport(kafka_settings)
    topic, group = f"cli-{uuid.uuid4().hex[:10]}", f"g-{uuid.uuid4().hex[:8]}"
    audit_topic = f"audit-{uuid.uuid4().hex[:8]}"
    asyncio.run(_setup(transport, topic, group))
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers}
    chain = ["--audit", "chain", "--audit-topic", audit_topic]
    try:
        # The audit topic is checked before anything moves: no topic, no reset.
        refused = runner.invoke(
            offsets_app,
            ["reset", "-g", group, "--to-earliest", "--execute", *chain],
            env={**env, "REGISTRY_URL": registry_url},
        )
        assert refused.exit_code == 2, refused.output
        assert "streaming topics ensure" in refused.output
        plan = runner.invoke(offsets_app, ["reset", "-g", group, "--to-latest", "--json"], env=env)
        assert all(p["current"] == 1 for p in json.loads(plan.stdout)["partitions"]), plan.stdout

        asyncio.run(_create(transport, audit_topic))
        env["REGISTRY_URL"] = registry_url
        reset = runner.invoke(
            offsets_app, ["reset", "-g", group, "--to-earliest", "--execute", *chain], env=env
        )
        assert reset.exit_code == 0, reset.output
        copy = f"{topic}-copy"
        replayed = runner.invoke(
            replay_app, ["--topic", topic, "--to", copy, "--create-target", *chain], env=env
        )
        assert replayed.exit_code == 0, replayed.output

        events = asyncio.run(_audit_events(transport, audit_topic, registry_url, 2))
        assert [str(e.event_type) for e in events] == ["OFFSET_RESET", "REPLAY_STARTED"]
        assert all(e.actor.actor_id for e in events)
        assert [e.resource_id for e in events] == [group, topic]
    finally:
        asyncio.run(_cleanup(transport, topic, f"{topic}-copy", audit_topic))


async def _create(transport: KafkaTransport, topic: str) -> None:
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec(topic, 1)])
    await admin.stop()


def _order_schema(fields: list[dict[str, object]]) -> Schema:
    return Schema(json.dumps({"type": "record", "name": "Order", "fields": fields}))


async def _typed_setup(
    transport: KafkaTransport, registry_url: str, topic: str, subject: str
) -> tuple[int, int]:
    """Two writer schemas (compatibility NONE) and one record written with each."""
    async with SchemaRegistryClient(RegistrySettings(url=registry_url)) as registry:
        await registry.set_compatibility("NONE", subject)
        v1 = await registry.register_schema(
            subject, _order_schema([{"name": "id", "type": "string"}])
        )
        v2 = await registry.register_schema(
            subject, _order_schema([{"name": "qty", "type": "int"}])
        )
    await _create(transport, topic)
    producer = transport.producer()
    await producer.start()
    await producer.send_many(
        [OutgoingRecord(topic, frame(v1, b"\x02a")), OutgoingRecord(topic, frame(v2, b"\x02"))]
    )
    await producer.stop()
    return v1, v2


def test_replay_refuses_a_range_the_reader_schema_cannot_read(
    kafka_settings: KafkaSettings, registry_url: str
) -> None:
    """The schema pre-check against the real registry service: offending ids listed, exit 4,
    nothing written; the readable prefix replays."""
    transport = KafkaTransport(kafka_settings)
    topic = f"typed-{uuid.uuid4().hex[:10]}"
    subject = f"{topic}-value"
    v1, v2 = asyncio.run(_typed_setup(transport, registry_url, topic, subject))
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "REGISTRY_URL": registry_url,
    }
    # The latest version of the subject (v2) is the reader: it cannot read v1's records.
    common = ["--topic", topic, "--to", f"{topic}-copy", "--create-target", "--audit", "log"]
    try:
        refused = runner.invoke(replay_app, [*common, "--reader-subject", subject], env=env)
        assert refused.exit_code == 4, refused.output
        text = " ".join(refused.output.split())  # rich wraps long lines
        offending = re.search(r"cannot read writer schema id\(s\) ([\d, ]+):", text)
        assert offending is not None, text
        assert offending.group(1).split(", ") == [str(v1)], (v1, v2, text)
        copied = asyncio.run(_count(transport, f"{topic}-copy"))
        assert copied == 0
        tail = runner.invoke(
            replay_app, [*common, "--reader-subject", subject, "--from", "1", "--json"], env=env
        )
        assert tail.exit_code == 0, tail.output
        assert json.loads(tail.stdout)["written"] == 1
    finally:
        asyncio.run(_cleanup(transport, topic, f"{topic}-copy"))


async def _count(transport: KafkaTransport, topic: str) -> int:
    admin = transport.admin()
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return 0
    finally:
        await admin.stop()
    consumer = transport.consumer()
    await consumer.start()
    try:
        end = await consumer.end_offsets([TopicPartition(topic, 0)])
        return sum(end.values())
    finally:
        await consumer.stop()


def test_root_cli_dlq_redrive_of_an_empty_dlq_prints_only_json(
    kafka_settings: KafkaSettings,
) -> None:
    """Through the installed entry point: logs go to stderr, stdout is one JSON document,
    and a consumer stopped right after start (nothing to read) exits cleanly."""
    transport = KafkaTransport(kafka_settings)
    topic, group = f"cli-{uuid.uuid4().hex[:10]}", f"g-{uuid.uuid4().hex[:8]}"
    asyncio.run(_create(transport, topic))
    asyncio.run(_create(transport, f"{topic}.{group}.dlq"))
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers}
    try:
        for extra in ([], ["--execute", "--audit", "log"]):
            args = ["dlq", "redrive", "-t", topic, "-g", group, *extra, "--json"]
            done = subprocess.run(
                [sys.executable, "-m", "streaming", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            doc = json.loads(done.stdout)
            assert (doc["redriven"], doc["dry_run"]) == (0, not extra)
    finally:
        asyncio.run(_cleanup(transport, topic, f"{topic}.{group}.dlq", f"{topic}.{group}.parking"))
