"""Typed producer against raw aiokafka, confluent-kafka and Kafka's ProducerPerformance.

Not a test. Per value size (~100 B, ~1 KiB) and round, each contender writes to a fresh
topic (acks=all, idempotence on, linger 5 ms) and the topic's end offsets are checked
against what it claims to have sent (a shortfall drops the round):

- ``typed loop``: ``await EventProducer.enqueue()`` per event, the delivery futures
  gathered per 1000 (``EventProducer.send()`` waits for each acknowledgement instead);
- ``typed many``: ``EventProducer.send_many`` in chunks of 1000;
- ``raw``: aiokafka per-record ``send()`` (enqueue, gather the futures per chunk) of the
  same value bytes, key and headers;
- ``confluent``: ``SerializingProducer`` + ``AvroSerializer`` against our registry, in a
  child process (librdkafka threads outlive the producer object);
- ``kafka-perf``: ``org.apache.kafka.tools.ProducerPerformance``, the physical-limit anchor
  (same settings and value size; 5x the records, so the JVM's warm-up does not dominate).

    python -m bench.bench_producer [--messages 20000] [--rounds 3]
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import typer

from bench import harness, kafka_tools
from bench.harness import Run
from streaming.clients.producer import EventProducer
from streaming.config import KafkaSettings
from streaming.events import Event, OrderPlaced
from streaming.events.fake import fake_events
from streaming.serde import InMemorySchemaRegistryClient, default_catalog
from streaming.transport.kafka import KafkaTransport

app = typer.Typer(add_completion=False)
SIZES = (("100 B", 0), ("1 KiB", 900))


def events(n: int, pad: int) -> list[Event]:
    made = list(fake_events(OrderPlaced, n, rng=random.Random(1), keys=1000))
    if pad:
        made = [e.model_copy(update={"client_order_id": "x" * pad}) for e in made]
    return made


def standalone(fullname: str) -> Any:
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


def confluent(bootstrap: str, registry_url: str, topic: str, n: int, pad: int) -> float:
    """Child job: confluent-kafka's typed path over the same seeded events."""
    from confluent_kafka import SerializingProducer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import StringSerializer

    batch = events(n, pad)
    schema_str = json.dumps(standalone(OrderPlaced.avro_name))
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
    producer.produce(topic, key=batch[0].partition_key(), value=batch[0])  # warm-up
    producer.flush()
    started = time.perf_counter()
    for event in batch:
        while True:
            try:
                producer.produce(topic, key=event.partition_key(), value=event)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush()
    return n / (time.perf_counter() - started)


class Contenders:
    """The producer contenders for one value size; each returns a checked :class:`Run`."""

    def __init__(self, bootstrap: str, registry_url: str, make_topic: Any, n: int, pad: int):
        self.bootstrap, self.registry_url, self.make_topic = bootstrap, registry_url, make_topic
        self.n, self.pad = n, pad
        self.events = events(n, pad)
        self.transport = KafkaTransport(KafkaSettings(bootstrap_servers=bootstrap))
        self.registry = InMemorySchemaRegistryClient()
        self.records: list[Any] = []

    async def prepare(self) -> float:
        async with EventProducer(self.transport, self.registry) as p:
            self.records = [await p.build("size-probe", e) for e in self.events]
        return statistics.mean(len(r.value or b"") for r in self.records)

    async def _checked(self, topic: str, rate: float, expected: int) -> Run:
        return Run(rate, expected=expected, seen=await harness.end_offsets(self.bootstrap, topic))

    async def typed_loop(self) -> Run:
        """``await EventProducer.enqueue()`` per event, the futures gathered per 1000 (the
        shape of the raw contender's loop)."""
        topic = await self.make_topic()
        async with EventProducer(self.transport, self.registry) as p:
            await (await p.enqueue(topic, self.events[0]))  # registry, metadata, connection
            started = time.perf_counter()
            for i in range(0, self.n, 1000):
                await asyncio.gather(
                    *[await p.enqueue(topic, e) for e in self.events[i : i + 1000]]
                )
            await p.flush()
            rate = self.n / (time.perf_counter() - started)
        return await self._checked(topic, rate, self.n + 1)

    async def typed_many(self) -> Run:
        topic = await self.make_topic()
        async with EventProducer(self.transport, self.registry) as p:
            await p.send_many(topic, self.events[:10])
            started = time.perf_counter()
            for i in range(0, self.n, 1000):
                await p.send_many(topic, self.events[i : i + 1000])
            await p.flush()
            rate = self.n / (time.perf_counter() - started)
        return await self._checked(topic, rate, self.n + 10)

    async def raw(self) -> Run:
        from aiokafka import AIOKafkaProducer

        topic = await self.make_topic()
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, linger_ms=5
        )
        await producer.start()
        try:
            first = self.records[0]
            await (await producer.send(topic, value=first.value, key=first.key))
            started = time.perf_counter()
            for i in range(0, self.n, 1000):
                futures = [
                    await producer.send(topic, value=r.value, key=r.key, headers=list(r.headers))
                    for r in self.records[i : i + 1000]
                ]
                await asyncio.gather(*futures)
            await producer.flush()
            rate = self.n / (time.perf_counter() - started)
        finally:
            await producer.stop()
        return await self._checked(topic, rate, self.n + 1)

    async def confluent(self) -> Run:
        topic = await self.make_topic()
        rate = await harness.run_child(
            __spec__.name,
            "confluent",
            bootstrap=self.bootstrap,
            registry_url=self.registry_url,
            topic=topic,
            n=self.n,
            pad=self.pad,
        )
        return await self._checked(topic, float(rate), self.n + 1)

    async def kafka_perf(self, size: int) -> Run:
        # Kafka 4.1's tool has no warm-up option and its rate includes JIT warm-up: it
        # sends 5x as many records, so the steady state dominates its figure.
        n = 5 * self.n
        topic = await self.make_topic()
        run = await kafka_tools.producer_performance(self.bootstrap, topic, n, size)
        return Run(run.value, expected=n, seen=await harness.end_offsets(self.bootstrap, topic))


async def measure(messages: int, rounds: int) -> dict[str, Any]:
    bootstrap = harness.env("KAFKA_BOOTSTRAP_SERVERS")
    rows: list[dict[str, Any]] = []
    by_size: dict[str, harness.Rounds] = {}
    value_bytes: dict[str, int] = {}
    async with (
        harness.registry_process(bootstrap) as (registry_url, _),
        harness.topics(bootstrap) as make_topic,
    ):
        for label, pad in SIZES:
            c = Contenders(bootstrap, registry_url, make_topic, messages, pad)
            size = round(await c.prepare())

            async def perf(c: Contenders = c, size: int = size) -> Run:
                return await c.kafka_perf(size)

            got = await harness.interleave(
                {
                    "typed loop": c.typed_loop,
                    "typed many": c.typed_many,
                    "raw": c.raw,
                    "confluent": c.confluent,
                    "kafka-perf": perf,
                },
                rounds,
            )
            rows += [
                got.ratio(f"typed send loop ÷ raw aiokafka send() ({label})", "typed loop", "raw"),
                got.ratio(
                    f"typed send loop ÷ confluent typed ({label})", "typed loop", "confluent"
                ),
                got.ratio(f"typed send_many ÷ raw aiokafka send() ({label})", "typed many", "raw"),
                got.ratio(
                    f"typed send_many ÷ confluent typed ({label})", "typed many", "confluent"
                ),
                got.ratio(
                    f"raw aiokafka ÷ Kafka ProducerPerformance ({label})", "raw", "kafka-perf"
                ),
            ]
            by_size[label], value_bytes[label] = got, size
    return {
        "params": {"messages": messages, "rounds": rounds},
        "rows": rows,
        "value_bytes": value_bytes,
        **harness.groups(by_size),
    }


@app.command()
def main(
    messages: int = typer.Option(20_000, min=10, help="Messages per run."),
    rounds: int = typer.Option(3, min=1, help="Interleaved rounds (median of ratios)."),
    out: Path | None = harness.OUT_OPTION,
) -> None:
    harness.run("producer", measure(messages, rounds), out)


if __name__ == "__main__" and not harness.child_main({"confluent": confluent}):
    app()
