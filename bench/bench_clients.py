"""Typed clients vs their baselines, measured side by side on one broker.

Not a test. Rows (median of per-round ratios; rounds interleave the contenders):

- typed producer (EventProducer.send_many) / raw aiokafka (same value bytes, key and
  headers; acks=all, enable_idempotence=True, linger_ms=5), at ~100 B and ~1 KiB values;
- typed producer / raw aiokafka batch API (create_batch/send_batch per partition, the
  path EventProducer.send_many itself takes; shows what serialization and headers cost);
- typed producer / confluent-kafka SerializingProducer + AvroSerializer (same settings,
  registry = our registry service in a subprocess);
- typed consumer (EventConsumer, decode + dispatch + commit) / raw aiokafka getmany, and
  / raw getmany + fastavro schemaless_reader of every value (decoding by hand).

    eval "$(streaming dev env)"   # or KAFKA_BOOTSTRAP_SERVERS=...
    .venv/bin/python bench/bench_clients.py [--messages 20000] [--rounds 5] [--json]
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import fastavro
import httpx
import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from rich.console import Console
from rich.table import Table

from streaming.clients.consumer import EventConsumer
from streaming.clients.producer import EventProducer
from streaming.config import KafkaSettings
from streaming.events import Event, OrderPlaced
from streaming.events.fake import fake_events
from streaming.serde import InMemorySchemaRegistryClient, default_catalog
from streaming.transport.base import TopicSpec
from streaming.transport.kafka import KafkaTransport

app = typer.Typer(add_completion=False)
out = Console()


def _events(n: int, pad: int) -> list[Event]:
    events = list(fake_events(OrderPlaced, n, rng=random.Random(1), keys=1000))
    if pad:
        events = [e.model_copy(update={"client_order_id": "x" * pad}) for e in events]
    return events


async def _typed_produce(
    transport: KafkaTransport, registry: Any, topic: str, events: list[Event]
) -> float:
    async with EventProducer(transport, registry) as producer:
        await producer.send_many(topic, events[:10])  # registry round trips, metadata
        started = time.perf_counter()
        for i in range(0, len(events), 1000):
            await producer.send_many(topic, events[i : i + 1000])
        await producer.flush()
        return len(events) / (time.perf_counter() - started)


async def _raw_produce(bootstrap: str, topic: str, records: list[Any]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        await (await producer.send(topic, value=records[0].value, key=records[0].key))
        started = time.perf_counter()
        for i in range(0, len(records), 1000):
            futures = [
                await producer.send(topic, value=r.value, key=r.key, headers=list(r.headers))
                for r in records[i : i + 1000]
            ]
            await asyncio.gather(*futures)
        await producer.flush()
        return len(records) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def _raw_batch_produce(bootstrap: str, topic: str, records: list[Any]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=1_048_576,
    )
    await producer.start()
    partitioner = DefaultPartitioner()
    try:
        await (await producer.send(topic, value=records[0].value, key=records[0].key))
        parts = sorted(await producer.partitions_for(topic))
        started = time.perf_counter()
        for i in range(0, len(records), 1000):
            batches: dict[int, Any] = {}
            futures = []
            for r in records[i : i + 1000]:
                partition = partitioner(r.key, parts, parts)
                batch = batches.get(partition)
                if batch is None:
                    batch = batches[partition] = producer.create_batch()
                batch.append(timestamp=None, key=r.key, value=r.value, headers=list(r.headers))
            for partition, batch in batches.items():
                batch.close()
                futures.append(await producer.send_batch(batch, topic, partition=partition))
            await asyncio.gather(*futures)
        await producer.flush()
        return len(records) / (time.perf_counter() - started)
    finally:
        await producer.stop()


def _standalone(fullname: str) -> Any:
    """The schema with referenced named types inlined once (confluent needs no refs then)."""
    catalog = default_catalog()
    seen: set[str] = set()

    def inline(node: Any, namespace: str) -> Any:
        if isinstance(node, str):
            full = node if "." in node else f"{namespace}.{node}"
            if full in catalog and full not in seen:
                seen.add(full)
                return inline(catalog.get(full).definition(), namespace)
            return full if full in catalog else node
        if isinstance(node, list):
            return [inline(n, namespace) for n in node]
        if isinstance(node, dict):
            if node.get("type") in ("record", "enum", "fixed") and "name" in node:
                name = node["name"]
                ns = node.get("namespace", namespace)
                seen.add(name if "." in name else f"{ns}.{name}")
                namespace = ns
            return {
                k: inline(v, namespace) if k in ("type", "items", "values", "fields") else v
                for k, v in node.items()
            }
        return node

    return inline(catalog.get(fullname).definition(), "")


def _confluent_produce(bootstrap: str, registry_url: str, topic: str, events: list[Event]) -> float:
    from confluent_kafka import SerializingProducer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import StringSerializer

    schema_str = json.dumps(_standalone(OrderPlaced.avro_name))
    client = SchemaRegistryClient({"url": registry_url})
    serializer = AvroSerializer(client, schema_str, lambda obj, ctx: obj.to_avro_dict())
    producer = SerializingProducer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "key.serializer": StringSerializer("utf_8"),
            "value.serializer": serializer,
        }
    )
    producer.produce(topic, key=events[0].partition_key(), value=events[0])
    producer.flush()
    started = time.perf_counter()
    for event in events:
        while True:
            try:
                producer.produce(topic, key=event.partition_key(), value=event)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush()
    return len(events) / (time.perf_counter() - started)


async def _confluent_in_child(
    bootstrap: str, registry_url: str, topic: str, messages: int, pad: int
) -> float:
    """confluent-kafka in a child process: its librdkafka threads outlive the producer
    object and, in this process, slowed the contender that ran after it by a third."""
    job = json.dumps([bootstrap, registry_url, topic, messages, pad])
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, _CHILD_FLAG, job, stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await child.communicate()
    if child.returncode != 0:
        raise SystemExit(f"confluent contender failed (exit {child.returncode})")
    return float(stdout.decode().strip().splitlines()[-1])


def _confluent_child(job: str) -> None:
    bootstrap, registry_url, topic, messages, pad = json.loads(job)
    events = _events(messages, pad)  # the same seeded events as the parent's
    sys.stdout.write(f"{_confluent_produce(bootstrap, registry_url, topic, events)}\n")


_CHILD_FLAG = "--confluent-child"


async def _typed_consume(transport: KafkaTransport, registry: Any, topic: str, n: int) -> float:
    consumer = EventConsumer(
        transport,
        registry,
        topics=[topic],
        group_id=f"bench-{uuid.uuid4().hex[:6]}",
        create_failure_topics=False,
        poll_timeout_ms=100,
    )
    marks: list[float] = []

    async def handle(event: OrderPlaced) -> None:
        marks.append(time.perf_counter())
        if len(marks) >= n:
            consumer.request_stop()

    consumer.add_handler(OrderPlaced, handle)
    await consumer.run()
    return (len(marks) - 1) / (marks[-1] - marks[0])


async def _raw_consume(bootstrap: str, topic: str, n: int, decode: Any = None) -> float:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got, started = 0, 0.0
        while got < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            for records in batch.values():
                if not started and records:
                    started = time.perf_counter()  # the first record starts the clock
                got += len(records)
                if decode is not None:
                    for record in records:
                        decode(record.value)
        return (got - 1) / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_registry(bootstrap: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streaming",
            "registry",
            "serve",
            "--port",
            str(port),
            "--topic",
            f"_schemas-bench-{uuid.uuid4().hex[:8]}",
        ],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/subjects", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # poll
    proc.kill()
    raise SystemExit("registry did not start")


async def _bench(messages: int, rounds: int, bootstrap: str, registry_url: str) -> dict[str, Any]:
    transport = KafkaTransport(KafkaSettings(bootstrap_servers=bootstrap))
    admin = transport.admin()
    await admin.start()
    topics: list[str] = []

    async def topic(partitions: int = 1) -> str:
        name = f"bench-{uuid.uuid4().hex[:10]}"
        await admin.create_topics([TopicSpec(name, partitions)])
        topics.append(name)
        return name

    results: dict[str, list[float]] = {}
    rates: dict[str, list[float]] = {}
    try:
        registry = InMemorySchemaRegistryClient()
        for size, pad in (("100B", 0), ("1KiB", 900)):
            events = _events(messages, pad)
            async with EventProducer(transport, registry) as p:
                records = [await p.build("size-probe", e) for e in events]
            value_len = statistics.mean(len(r.value or b"") for r in records)
            out.print(f"[dim]{size}: mean value {value_len:.0f} bytes[/dim]")
            for r in range(rounds):
                order = ["typed", "raw", "raw-batch", "confluent"]
                random.Random(r).shuffle(order)
                got: dict[str, float] = {}
                for who in order:
                    t = await topic()
                    if who == "typed":
                        got[who] = await _typed_produce(transport, registry, t, events)
                    elif who == "raw":
                        got[who] = await _raw_produce(bootstrap, t, records)
                    elif who == "raw-batch":
                        got[who] = await _raw_batch_produce(bootstrap, t, records)
                    else:
                        got[who] = await _confluent_in_child(
                            bootstrap, registry_url, t, messages, pad
                        )
                for who, rate in got.items():
                    rates.setdefault(f"producer {size} {who}", []).append(rate)
                results.setdefault(f"typed producer / raw aiokafka ({size})", []).append(
                    got["typed"] / got["raw"]
                )
                results.setdefault(f"typed producer / raw aiokafka batch API ({size})", []).append(
                    got["typed"] / got["raw-batch"]
                )
                results.setdefault(
                    f"typed producer / confluent Serializing+Avro ({size})", []
                ).append(got["typed"] / got["confluent"])
        # Consumer: one topic filled once, read by both sides each round.
        t = await topic()
        events = _events(messages, 0)
        async with EventProducer(transport, registry) as p:
            await p.send_many(t, events)
        parsed = default_catalog().parsed(OrderPlaced.avro_name)

        def decode(value: bytes) -> Any:
            return fastavro.schemaless_reader(io.BytesIO(value[5:]), parsed)

        for r in range(rounds):
            order = ["typed", "raw", "raw+decode"]
            random.Random(r).shuffle(order)
            got = {}
            for who in order:
                if who == "typed":
                    got[who] = await _typed_consume(transport, registry, t, messages)
                elif who == "raw":
                    got[who] = await _raw_consume(bootstrap, t, messages)
                else:
                    got[who] = await _raw_consume(bootstrap, t, messages, decode)
            for who, rate in got.items():
                rates.setdefault(f"consumer 100B {who}", []).append(rate)
            results.setdefault("typed consumer / raw getmany (100B)", []).append(
                got["typed"] / got["raw"]
            )
            results.setdefault("typed consumer / raw getmany + fastavro (100B)", []).append(
                got["typed"] / got["raw+decode"]
            )
    finally:
        await admin.delete_topics(topics)
        await admin.stop()
    return {
        "messages": messages,
        "rounds": rounds,
        "ratios": {k: statistics.median(v) for k, v in results.items()},
        "msgs_per_s": {k: statistics.median(v) for k, v in rates.items()},
    }


@app.command()
def main(
    messages: int = typer.Option(20_000, help="Messages per run."),
    rounds: int = typer.Option(5, help="Interleaved rounds (median of ratios)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        raise SystemExit('set KAFKA_BOOTSTRAP_SERVERS (eval "$(streaming dev env)")')
    proc, registry_url = _start_registry(bootstrap)
    try:
        report = asyncio.run(_bench(messages, rounds, bootstrap, registry_url))
    finally:
        proc.terminate()
        proc.wait(10)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    table = Table("ratio (median of rounds)", "value", title=f"{messages} msgs x {rounds} rounds")
    for name, value in report["ratios"].items():
        table.add_row(name, f"{value:.2f}")
    out.print(table)
    rates = Table("contender", "msgs/s (median)")
    for name, value in report["msgs_per_s"].items():
        rates.add_row(name, f"{value:,.0f}")
    out.print(rates)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == _CHILD_FLAG:
        _confluent_child(sys.argv[2])
    else:
        app()
