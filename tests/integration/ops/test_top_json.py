"""``streaming top --once --json`` from the outside: the executable as a subprocess, the
lag made with confluent-kafka, the optional sources unset, down, or up."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import uuid
from typing import Any

import httpx
from confluent_kafka import Consumer, Producer

from streaming.config import KafkaSettings
from streaming.registry.server import RegistryServer, ServerSettings
from streaming.testing import eventually_sync
from streaming.transport.kafka import KafkaTransport
from tests.integration.ops.conftest import (
    COMMITTED,
    DLQ_RECORDS,
    PRODUCED,
    RETRY_RECORDS,
    Behind,
    closed_port,
    streaming_command,
    top_env,
)


def _top(behind: Behind, env: dict[str, str], *extra: str) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [*streaming_command(), "top", "--once", "--json", "--group", behind.group, *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    return done.returncode, json.loads(done.stdout), done.stderr


def _group(doc: dict[str, Any], group: str) -> dict[str, Any]:
    (found,) = [g for g in doc["kafka"]["groups"] if g["group"] == group]
    return found


def test_once_json_shows_a_group_exactly_100_records_behind(
    behind: Behind, kafka_settings: KafkaSettings
) -> None:
    code, doc, stderr = _top(behind, top_env(kafka_settings.bootstrap_servers))
    assert code == 0, stderr
    group = _group(doc, behind.group)
    assert group["lag"] == PRODUCED - COMMITTED == 100
    assert group["state"] == "Empty" and group["members"] == 0
    (row,) = group["topics"]
    assert row["topic"] == behind.topic
    assert row["partitions"] == [
        {"partition": 0, "committed": COMMITTED, "end": PRODUCED, "lag": 100}
    ]
    assert row["retry"] == [{"topic": behind.retry, "depth": RETRY_RECORDS}]
    assert row["dlq"] == {"topic": behind.dlq, "depth": DLQ_RECORDS}
    # two looks one interval apart: rates are measured (nothing moved), not null
    assert row["consume_rate"] == 0.0 and doc["interval_s"] > 0
    (topic,) = doc["kafka"]["topics"]  # the failure topics sit under their group
    assert topic == {
        "topic": behind.topic, "partitions": 1, "end_offset": PRODUCED, "produce_rate": 0.0
    }  # fmt: skip
    assert doc["audit"]["status"] == doc["registry"]["status"] == "unset"
    assert "DATABASE_URL" in doc["audit"]["error"] and "REGISTRY_URL" in doc["registry"]["error"]


def test_once_json_reports_sources_that_are_down_and_exits_3(
    behind: Behind, kafka_settings: KafkaSettings
) -> None:
    env = top_env(
        kafka_settings.bootstrap_servers,
        DATABASE_URL=f"postgresql://nobody@127.0.0.1:{closed_port()}/nothing",
        REGISTRY_URL=f"http://127.0.0.1:{closed_port()}",
    )
    code, doc, stderr = _top(behind, env, "--timeout", "5")
    assert code == 3, stderr
    assert _group(doc, behind.group)["lag"] == 100  # Kafka still shown
    for part in ("audit", "registry"):
        assert doc[part]["status"] == "down" and doc[part]["error"], doc[part]


async def test_once_json_measures_the_registry_request_rate(
    behind: Behind, kafka_settings: KafkaSettings
) -> None:
    """A registry of this checkout answering API calls while ``top`` looks twice."""
    settings = ServerSettings(port=0, topic=f"_schemas-top-{uuid.uuid4().hex[:10]}")
    async with RegistryServer(settings, kafka=kafka_settings) as server:
        env = top_env(kafka_settings.bootstrap_servers, REGISTRY_URL=server.url)
        command = [*streaming_command(), "top", "--once", "--json", "-g", behind.group]
        proc = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        waiting = asyncio.ensure_future(proc.communicate())
        async with httpx.AsyncClient(base_url=server.url) as client:
            while not waiting.done():
                assert (await client.get("/subjects")).status_code == 200
                await asyncio.wait({waiting}, timeout=0.05)
        stdout, stderr = await waiting
    admin = KafkaTransport(kafka_settings).admin()
    await admin.start()
    await admin.delete_topics([settings.topic])
    await admin.stop()
    assert proc.returncode == 0, stderr.decode()
    registry = json.loads(stdout)["registry"]
    assert registry["status"] == "ok" and registry["ready"] is True
    assert registry["requests_total"] > 0 and registry["request_rate"] > 0


def test_once_json_measures_produce_and_consume_rates_of_a_live_group(
    behind: Behind, kafka_settings: KafkaSettings
) -> None:
    """A producer and a member of the group (confluent-kafka) at work while ``top`` looks."""
    conf = {"bootstrap.servers": kafka_settings.bootstrap_servers}
    consumer = Consumer({**conf, "group.id": behind.group, "enable.auto.commit": False})
    consumer.subscribe([behind.topic])
    eventually_sync(
        lambda: consumer.poll(0.1) is not None or bool(consumer.assignment()),
        what="the member's assignment",
    )
    stop = threading.Event()

    def produce() -> None:
        producer = Producer(conf)
        while not stop.wait(0.02):  # pacing: about 50 records a second
            producer.produce(behind.topic, value=b"more", partition=0)
            producer.poll(0)
        producer.flush(10)

    def consume() -> None:
        while not stop.is_set():
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                consumer.commit(message, asynchronous=False)

    workers = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for worker in workers:
        worker.start()
    try:
        code, doc, stderr = _top(behind, top_env(kafka_settings.bootstrap_servers))
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
        consumer.close()
    assert code == 0, stderr
    group = _group(doc, behind.group)
    assert (group["state"], group["members"]) == ("Stable", 1)
    assert group["consume_rate"] > 0
    (topic,) = doc["kafka"]["topics"]
    assert topic["produce_rate"] > 0
