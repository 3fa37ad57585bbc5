"""Typed consumer against raw aiokafka, FastStream and Kafka's ConsumerPerformance.

Not a test. One topic is filled once (OrderPlaced, ~100 B values, schemas in our registry
in a subprocess); each round every contender reads all of it, each in its own fresh
process, from the first record to the last (group join and start-up excluded):

- ``typed``: ``EventConsumer`` (decode, model, dispatch, commit), tracing and metrics on;
- ``typed batch``: the same with a batch handler (one ``process`` span per partition
  batch, linked to each record's producer, instead of one per record);
- ``faststream``: FastStream's aiokafka broker, a fastavro decoder building the same
  pydantic model, its OpenTelemetry middleware (spans and metrics) on, default ack policy;
- ``raw``: aiokafka ``getmany``; ``raw+fastavro``: the same plus ``schemaless_reader`` of
  every value;
- ``kafka-perf``: ``org.apache.kafka.tools.ConsumerPerformance`` (fetch rate) over 5x as
  many records of the same size on a topic of its own (the JVM's warm-up would otherwise
  dominate a short run).

A contender that does not see every record within ``--deadline`` seconds lost records,
and its round is dropped.

    python -m bench.bench_consumer [--messages 20000] [--rounds 3]
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
import uuid
from pathlib import Path
from typing import Any

import typer

from bench import harness, kafka_tools
from bench.bench_producer import events
from bench.harness import Run
from streaming.clients.producer import EventProducer
from streaming.config import KafkaSettings, RegistrySettings
from streaming.events import OrderPlaced
from streaming.serde import default_catalog
from streaming.serde.client import SchemaRegistryClient
from streaming.transport.kafka import KafkaTransport

app = typer.Typer(add_completion=False)


def _result(marks: list[float], n: int, cpu: list[float]) -> dict[str, Any]:
    """Records per second after the first delivery (a batch handler marks a whole batch
    at once, so the first batch is the start line; one batch alone gives no rate), and
    per CPU-second of the contender's own process over the same stretch (``cpu``: its
    ``process_time()`` at the first and the last delivery), which a busy machine moves
    far less than wall time."""
    first = marks[0] if marks else 0.0
    span = marks[-1] - first if marks else 0.0
    after_first = sum(1 for mark in marks if mark > first)
    rate = after_first / span if span > 0 else 0.0
    cpu_s = cpu[-1] - cpu[0] if len(cpu) > 1 else 0.0
    cpu_rate = after_first / cpu_s if cpu_s > 0 else 0.0
    return {"rate": rate, "cpu_rate": cpu_rate, "seen": len(marks), "expected": n}


def _mark(marks: list[float], cpu: list[float], count: int, n: int) -> bool:
    """Note ``count`` deliveries now; True once all ``n`` are in."""
    now = time.perf_counter()
    if not marks or len(marks) + count >= n:
        cpu.append(time.process_time())
    marks.extend(now for _ in range(count))
    return len(marks) >= n


def _decoder() -> Any:
    import fastavro

    parsed = default_catalog().parsed(OrderPlaced.avro_name)

    def decode(value: bytes) -> Any:
        return fastavro.schemaless_reader(io.BytesIO(value[5:]), parsed, None)

    return decode


async def typed(
    bootstrap: str, registry_url: str, topic: str, n: int, deadline_s: float, batch: bool = False
) -> Any:
    """Child job: the typed consumer with tracing and metrics on (a record handler, or
    with ``batch`` a batch handler: one span per partition batch)."""
    tel = harness.telemetry()
    async with SchemaRegistryClient(RegistrySettings(url=registry_url)) as registry:
        consumer = harness.traced_consumer(bootstrap, registry, topic, tel, poll_timeout_ms=100)
        marks: list[float] = []
        cpu: list[float] = []

        async def handle(event: OrderPlaced) -> None:
            if _mark(marks, cpu, 1, n):
                consumer.request_stop()

        async def handle_batch(events: list[OrderPlaced]) -> None:
            if _mark(marks, cpu, len(events), n):
                consumer.request_stop()

        if batch:
            consumer.add_batch_handler(OrderPlaced, handle_batch)
        else:
            consumer.add_handler(OrderPlaced, handle)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(consumer.run(), deadline_s)
    return _result(marks, n, cpu)


async def faststream(bootstrap: str, topic: str, n: int, deadline_s: float, **_: Any) -> Any:
    """Child job: FastStream with a fastavro decoder and its telemetry middleware."""
    from faststream.kafka import KafkaBroker, KafkaMessage
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

    tel = harness.telemetry()
    decode = _decoder()
    broker = KafkaBroker(
        bootstrap,
        middlewares=[
            KafkaTelemetryMiddleware(
                tracer_provider=tel.tracer_provider, meter_provider=tel.meter_provider
            )
        ],
        logger=None,
    )
    done = asyncio.Event()
    marks: list[float] = []
    cpu: list[float] = []

    async def decoder(message: KafkaMessage) -> Any:
        return OrderPlaced.from_avro_dict(decode(message.body))

    @broker.subscriber(
        topic,
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        decoder=decoder,
    )
    async def handle(event: OrderPlaced) -> None:
        if _mark(marks, cpu, 1, n):
            done.set()

    async with broker:
        await broker.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), deadline_s)
    return _result(marks, n, cpu)


async def raw(bootstrap: str, topic: str, n: int, deadline_s: float, decode: bool, **_: Any) -> Any:
    """Child job: aiokafka ``getmany`` (optionally + fastavro) of one partition."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    decoder = _decoder() if decode else None
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    got, first, last, cpu_first, cpu_last = 0, 0.0, 0.0, 0.0, 0.0
    stop_at = time.monotonic() + deadline_s
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        while got < n and time.monotonic() < stop_at:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            for records in batch.values():
                if not first and records:
                    first = time.perf_counter()  # the first record starts the clock
                    cpu_first = time.process_time()
                got += len(records)
                if decoder is not None:
                    for record in records:
                        decoder(record.value)
                last = time.perf_counter()
                cpu_last = time.process_time()
    finally:
        await consumer.stop()
    rate = (got - 1) / (last - first) if got > 1 else 0.0
    cpu_rate = (got - 1) / (cpu_last - cpu_first) if got > 1 and cpu_last > cpu_first else 0.0
    return {"rate": rate, "cpu_rate": cpu_rate, "seen": got, "expected": n}


def _run(result: dict[str, Any]) -> Run:
    extra = {"cpu": result["cpu_rate"]} if "cpu_rate" in result else {}
    return Run(result["rate"], expected=result["expected"], seen=result["seen"], extra=extra)


async def measure(messages: int, rounds: int, deadline_s: float) -> dict[str, Any]:
    bootstrap = harness.env("KAFKA_BOOTSTRAP_SERVERS")
    async with (
        harness.registry_process(bootstrap) as (registry_url, _),
        harness.topics(bootstrap) as make_topic,
    ):
        topic = await make_topic()
        async with (
            SchemaRegistryClient(RegistrySettings(url=registry_url)) as registry,
            EventProducer(
                KafkaTransport(KafkaSettings(bootstrap_servers=bootstrap)), registry
            ) as p,
        ):
            batch = events(messages, 0)
            for i in range(0, messages, 1000):
                await p.send_many(topic, batch[i : i + 1000])
            value_bytes = len((await p.build(topic, batch[0])).value or b"")
        # The anchor reads 5x as many records of the same size (written by Kafka's own
        # producer tool): Kafka 4.1's tools have no warm-up option, so a short run would
        # measure the JIT rather than the broker.
        anchor_topic, anchor_n = await make_topic(), 5 * messages
        await kafka_tools.producer_performance(bootstrap, anchor_topic, anchor_n, value_bytes)
        job = {
            "bootstrap": bootstrap,
            "registry_url": registry_url,
            "topic": topic,
            "n": messages,
            "deadline_s": deadline_s,
        }
        timeout = deadline_s + 120
        module = __spec__.name

        async def child(name: str, **extra: Any) -> Run:
            return _run(await harness.run_child(module, name, timeout, **job, **extra))

        async def typed_run() -> Run:
            return await child("typed")

        async def typed_batch_run() -> Run:
            return await child("typed", batch=True)

        async def faststream_run() -> Run:
            return await child("faststream")

        async def raw_run() -> Run:
            return await child("raw", decode=False)

        async def raw_decode_run() -> Run:
            return await child("raw", decode=True)

        async def perf_run() -> Run:
            return await kafka_tools.consumer_performance(bootstrap, anchor_topic, anchor_n)

        got = await harness.interleave(
            {
                "typed": typed_run,
                "typed batch": typed_batch_run,
                "faststream": faststream_run,
                "raw": raw_run,
                "raw+fastavro": raw_decode_run,
                "kafka-perf": perf_run,
            },
            rounds,
        )
    return {
        "params": {
            "messages": messages,
            "rounds": rounds,
            "deadline_s": deadline_s,
            "anchor_records": anchor_n,
        },
        "rows": [
            got.ratio("typed consumer ÷ raw getmany+fastavro", "typed", "raw+fastavro"),
            got.ratio("typed consumer ÷ FastStream", "typed", "faststream"),
            got.ratio("typed consumer ÷ raw getmany", "typed", "raw"),
            got.ratio("typed batch consumer ÷ raw getmany+fastavro", "typed batch", "raw+fastavro"),
            got.ratio("typed batch consumer ÷ FastStream", "typed batch", "faststream"),
            got.ratio("raw getmany ÷ Kafka ConsumerPerformance", "raw", "kafka-perf"),
            got.ratio(
                "typed consumer ÷ raw getmany+fastavro, per CPU-second",
                "typed cpu",
                "raw+fastavro cpu",
            ),
            got.ratio(
                "typed batch consumer ÷ raw getmany+fastavro, per CPU-second",
                "typed batch cpu",
                "raw+fastavro cpu",
            ),
            got.ratio("typed consumer ÷ FastStream, per CPU-second", "typed cpu", "faststream cpu"),
        ],
        **got.summary(),
    }


@app.command()
def main(
    messages: int = typer.Option(20_000, min=10, help="Messages per run."),
    rounds: int = typer.Option(3, min=1, help="Interleaved rounds (median of ratios)."),
    deadline: float = typer.Option(120.0, help="Seconds a contender gets to read them all."),
    out: Path | None = harness.OUT_OPTION,
) -> None:
    harness.run("consumer", measure(messages, rounds, deadline), out)


if __name__ == "__main__" and not harness.child_main(
    {"typed": typed, "faststream": faststream, "raw": raw}
):
    app()
