"""The operator commands against a real broker: JSON output, CSV export, exit codes."""

from __future__ import annotations

import asyncio
import json
import uuid

from typer.testing import CliRunner

from streaming.config import KafkaSettings
from streaming.replay_cli import offsets_app, replay_app, table_app
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
            ["reset", "-g", group, "--from-snapshot", "s1", "--execute", "--json"],
            env=env,
        )
        assert json.loads(applied.stdout)["executed"] is True

        dump = runner.invoke(table_app, ["dump", "--topic", topic, "--json"], env=env)
        assert dump.exit_code == 0, dump.output
        assert json.loads(dump.stdout) == {f"k{k}": f"v{15 + k}" for k in range(5)}

        copy = f"{topic}-copy"
        replayed = runner.invoke(
            replay_app, ["--topic", topic, "--to", copy, "--create-target", "--json"], env=env
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
