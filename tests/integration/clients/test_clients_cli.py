"""The clients CLI against a real broker and our registry service, run as a subprocess."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer
from confluent_kafka import TopicPartition as KafkaPartition

from streaming.consumer import EventConsumer
from streaming.events import OrderPlaced
from streaming.retry import RetryPolicy
from streaming.serde.avro import AvroSerializer
from streaming.serde.client import SchemaRegistryClient
from streaming.serde.context import SerializationContext
from streaming.transport.kafka import KafkaTransport
from tests.unit.clients.test_clients_unit import order

STREAMING = Path(sys.executable).parent / "streaming"  # the installed console script


async def cli(*args: str, stdin: bytes = b"", env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        STREAMING,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _env(kafka_transport: KafkaTransport, registry_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_transport.settings.bootstrap_servers,
        "REGISTRY_URL": registry_url,
    }


async def test_topics_produce_consume_and_dlq_commands(
    kafka_transport: KafkaTransport,
    kafka_admin,  # type: ignore[no-untyped-def]
    registry_url: str,
    schema_registry: SchemaRegistryClient,
) -> None:
    topic, group = f"cli-{uuid.uuid4().hex[:8]}", "cli-group"
    env = _env(kafka_transport, registry_url)
    try:
        code, out, err = await cli(
            "topics",
            "ensure",
            "--topic",
            topic,
            "--group",
            group,
            "--partitions",
            "2",
            "--no-internal",
            "--json",
            env=env,
        )
        assert code == 0, err
        created = json.loads(out)["created"]
        assert created == [
            topic,
            f"{topic}.{group}.retry.1",
            f"{topic}.{group}.retry.2",
            f"{topic}.{group}.dlq",
        ]
        config = await kafka_admin.describe_topic_config(f"{topic}.{group}.dlq")
        assert config["retention.ms"] == str(30 * 86_400_000)
        assert await kafka_admin.partition_count(f"{topic}.{group}.dlq") == 2

        line = order().model_dump_json()
        code, out, err = await cli(
            "produce",
            "--topic",
            topic,
            "--type",
            "OrderPlaced",
            "--json",
            stdin=(line + "\n").encode(),
            env=env,
        )
        assert code == 0, err
        assert json.loads(out)["sent"] == 1
        code, out, err = await cli(
            "produce", "--topic", topic, "--type", "OrderPlaced", "--fake", "4", env=env
        )
        assert code == 0, err

        code, out, err = await cli(
            "consume", "--topic", topic, "--from-beginning", "--json", "--max", "5", env=env
        )
        assert code == 0, err
        docs = [json.loads(x) for x in out.splitlines()]
        assert len(docs) == 5
        assert all(d["event_type"] == "OrderPlaced" for d in docs)
        assert {"event-id", "traceparent", "content-type"} <= {
            k for d in docs for k, _ in d["headers"]
        }
        assert json.loads(line)["order_id"] in {d["value"]["order_id"] for d in docs}

        code, _, err = await cli("produce", "--topic", topic, "--type", "Nope", env=env)
        assert code == 2 and "unknown event type" in err
        code, _, err = await cli(
            "produce", "--topic", topic, "--type", "OrderPlaced", stdin=b"{}\n", env=env
        )
        assert code == 2 and "line 1" in err

        consumer = EventConsumer(
            kafka_transport,
            schema_registry,
            topics=[topic],
            group_id=group,
            retry_policy=RetryPolicy(attempts=1),
            poll_timeout_ms=100,
        )

        @consumer.handler(OrderPlaced)
        async def handle(event: OrderPlaced) -> None:
            raise KeyError("missing account")

        task = asyncio.create_task(consumer.run())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while consumer.stats.dead_lettered < 5:
            assert loop.time() < deadline
            await asyncio.sleep(0.05)  # poll
        consumer.request_stop()
        await task

        code, out, err = await cli(
            "dlq", "list", "--topic", topic, "--group", group, "--json", env=env
        )
        assert code == 0, err
        summary = json.loads(out)
        assert summary["total"] == 5
        assert summary["by_exception_type"]["KeyError"]["count"] == 5
        code, out, err = await cli(
            "dlq", "show", "--topic", topic, "--group", group, "--json", env=env
        )
        assert code == 0, err
        shown = json.loads(out)
        assert shown["event_type"] == "OrderPlaced" and shown["raw_value_base64"]
        assert dict(shown["headers"])["x-exception-type"] == "KeyError"
        code, _, err = await cli(
            "dlq", "show", "--topic", topic, "--group", group, "--offset", "999", env=env
        )
        assert code == 1 and "no matching record" in err
    finally:
        present = await kafka_admin.list_topics()
        await kafka_admin.delete_topics([t for t in present if t.startswith(topic)])


async def test_plain_consume_prints_an_undecodable_record_as_base64_and_goes_on(
    kafka_transport: KafkaTransport,
    registry_url: str,
    schema_registry: SchemaRegistryClient,
    topic_factory,  # type: ignore[no-untyped-def]
) -> None:
    topic = await topic_factory(1, prefix="cli-garbage")
    placed = order()
    valid = await AvroSerializer(schema_registry).serialize(placed, SerializationContext(topic))
    garbage = b"\x07this is not a Confluent-framed record"
    producer = Producer({"bootstrap.servers": kafka_transport.settings.bootstrap_servers})
    producer.produce(topic, value=garbage, key=b"k1")
    producer.produce(topic, value=valid, key=b"k2")
    assert producer.flush(30) == 0

    code, out, err = await cli(
        "consume",
        "--topic",
        topic,
        "--from-beginning",
        "--max",
        "2",
        env=_env(kafka_transport, registry_url),
    )

    assert code == 0, err
    assert "Traceback" not in err
    assert f"{topic}[0]@0 UNDECODABLE key=k1" in out
    assert base64.b64encode(garbage).decode() in out
    assert "BadMagicByteError" in out
    assert f"{topic}[0]@1 OrderPlaced key=k2" in out
    assert str(placed.order_id) in out
    assert "2 record(s)" in err


def _read_topic(bootstrap: str, topic: str) -> list[Message]:
    """Every record of ``topic``, read by an independent confluent-kafka consumer."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(KafkaPartition(topic, p), timeout=30)[1]
            for p in partitions
        }
        consumer.assign([KafkaPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending = {p for p, end in ends.items() if end > 0}
        found: list[Message] = []
        deadline = time.monotonic() + 60
        while pending:
            assert time.monotonic() < deadline, f"still waiting for partitions {pending}"
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            found.append(message)
            if message.offset() + 1 >= ends[message.partition()]:
                pending.discard(message.partition())
        return found
    finally:
        consumer.close()


def _event_ids(messages: list[Message]) -> list[str]:
    return [dict(m.headers() or [])["event-id"].decode() for m in messages]


def _lines(events: list[OrderPlaced]) -> bytes:
    return "".join(e.model_dump_json() + "\n" for e in events).encode()


async def test_produce_sends_nothing_when_any_line_is_too_big(
    kafka_transport: KafkaTransport,
    registry_url: str,
    topic_factory,  # type: ignore[no-untyped-def]
) -> None:
    topic = await topic_factory(3, prefix="cli-big")
    bootstrap = kafka_transport.settings.bootstrap_servers
    env = _env(kafka_transport, registry_url)
    valid = [order() for _ in range(600)]
    huge = order().model_copy(update={"account_id": "x" * 5_000_000})

    code, _, err = await cli(
        "produce", "--topic", topic, "--type", "OrderPlaced", stdin=_lines([*valid, huge]), env=env
    )

    assert code == 2, err
    assert "stdin line 601: the encoded event is" in err and "max_request_size" in err
    assert "nothing was sent" in err
    assert await asyncio.to_thread(_read_topic, bootstrap, topic) == []

    code, _, err = await cli(
        "produce", "--topic", topic, "--type", "OrderPlaced", stdin=_lines(valid), env=env
    )
    assert code == 0, err
    assert "sent 600 OrderPlaced event(s)" in err
    sent = _event_ids(await asyncio.to_thread(_read_topic, bootstrap, topic))
    assert sorted(sent) == sorted(str(e.metadata.event_id) for e in valid)


async def test_produce_of_a_long_stream_says_how_many_were_sent_and_where_it_stopped(
    kafka_transport: KafkaTransport,
    registry_url: str,
    topic_factory,  # type: ignore[no-untyped-def]
) -> None:
    topic = await topic_factory(3, prefix="cli-window")
    padding = "c" * 10_000  # about 100 events per 1 MiB window
    valid = [order().model_copy(update={"client_order_id": padding}) for _ in range(600)]
    huge = order().model_copy(update={"account_id": "x" * 5_000_000})

    code, out, err = await cli(
        "produce",
        "--topic",
        topic,
        "--type",
        "OrderPlaced",
        "--window-mb",
        "1",
        "--json",
        stdin=_lines([*valid, huge]),
        env=_env(kafka_transport, registry_url),
    )

    assert code == 2, err
    doc = json.loads(out)
    sent, first_unsent = doc["sent"], doc["first_unsent"]
    assert 0 < sent < 600 and first_unsent == sent + 1
    assert "stdin line 601" in err
    assert f"sent {sent} event(s), up to stdin line {sent}" in err
    assert f"nothing from stdin line {first_unsent} on was sent" in err
    written = _event_ids(
        await asyncio.to_thread(_read_topic, kafka_transport.settings.bootstrap_servers, topic)
    )
    assert sorted(written) == sorted(str(e.metadata.event_id) for e in valid[:sent])
    assert sorted(r["event_id"] for r in doc["records"]) == sorted(written)
