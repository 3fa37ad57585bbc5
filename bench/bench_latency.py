"""End-to-end latency at fixed open-loop rates: typed producer + consumer against raw.

Not a test. For each rate (``--rates``, default 1k and 5k msg/s) and round, each side
runs a consumer on a fresh topic, warms it up, then sends ``rate x --seconds`` events on
a fixed schedule (open loop: a send is never held back by an earlier one's progress).
Latency is from an event's *scheduled* send time to its handler, so a stall shows up in
every event behind it (no coordinated omission):

- ``typed``: ``EventProducer.enqueue()`` per event (its delivery future left to run, as
  the raw side leaves aiokafka's) and ``EventConsumer`` with a handler, tracing and
  metrics on;
- ``raw``: aiokafka ``send()`` of the same bytes and ``getmany`` + fastavro decode.

Events missing after ``--seconds`` + 30 s count as lost (the round is dropped).

    python -m bench.bench_latency [--rates 1000,5000] [--seconds 2] [--rounds 3]
"""

from __future__ import annotations

import asyncio
import gc
import io
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import typer

from bench import harness
from bench.bench_producer import events
from bench.harness import Run
from streaming.clients.producer import EventProducer
from streaming.config import KafkaSettings
from streaming.events import Event, OrderPlaced
from streaming.serde import InMemorySchemaRegistryClient, default_catalog
from streaming.transport.kafka import KafkaTransport

app = typer.Typer(add_completion=False)
WARM_UP = 20


def _numbered(n: int) -> list[Event]:
    """Events whose ``client_order_id`` is their index (``w<i>`` for the warm-up ones).

    The whole schedule is built up front, then moved out of the collector's view
    (``gc.freeze``): otherwise every full collection during the run walks these ~10^4
    models (0.8 s of a 2.7 s typed run at 5k msg/s), a cost of the harness, not of
    either side.
    """
    made = events(n + WARM_UP, 0)
    numbered = [
        e.model_copy(update={"client_order_id": f"w{i}" if i < WARM_UP else str(i - WARM_UP)})
        for i, e in enumerate(made)
    ]
    gc.collect()
    gc.freeze()
    return numbered


class Clock:
    """Scheduled send times and observed arrival latencies of one run."""

    def __init__(self, n: int) -> None:
        self.scheduled = [0.0] * n
        self.latencies: list[float] = []
        self.warm = 0

    def arrived(self, client_order_id: str) -> None:
        if client_order_id.startswith("w"):
            self.warm += 1
        else:
            self.latencies.append(time.perf_counter() - self.scheduled[int(client_order_id)])

    def run(self, n: int) -> Run:
        got = sorted(self.latencies)
        if not got:
            return Run(0.0, expected=n, seen=0)
        p99 = got[min(len(got) - 1, int(len(got) * 0.99))] * 1000
        return Run(p99, expected=n, seen=len(got), extra={"p50_ms": statistics.median(got) * 1000})


async def _until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:  # noqa: ASYNC110 - sampling a counter
        await asyncio.sleep(0.01)  # poll


async def _open_loop(
    batch: list[Event], rate: int, clock: Clock, send: Callable[[int, Event], Awaitable[None]]
) -> None:
    """Send the warm-up events, then the rest at ``rate`` on a fixed schedule."""
    for i, event in enumerate(batch[:WARM_UP]):
        await send(-1 - i, event)
    await _until(lambda: clock.warm >= WARM_UP, 60)
    start = time.perf_counter()
    for i, event in enumerate(batch[WARM_UP:]):
        due = start + i / rate
        clock.scheduled[i] = due
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the open-loop schedule, not synchronisation
        await send(i, event)


async def typed_side(bootstrap: str, topic: str, rate: int, n: int, wait_s: float) -> Run:
    tel = harness.telemetry()
    transport = KafkaTransport(KafkaSettings(bootstrap_servers=bootstrap))
    registry = InMemorySchemaRegistryClient()
    clock = Clock(n)
    consumer = harness.traced_consumer(bootstrap, registry, topic, tel, poll_timeout_ms=100)

    async def handle(event: OrderPlaced) -> None:
        clock.arrived(event.client_order_id or "")

    consumer.add_handler(OrderPlaced, handle)
    consumer_task = asyncio.create_task(consumer.run())
    async with EventProducer(
        transport, registry, tracer=tel.tracer, instruments=tel.instruments
    ) as producer:

        async def send(i: int, event: Event) -> None:
            await producer.enqueue(topic, event)  # a lost record shows as missing

        await _open_loop(_numbered(n), rate, clock, send)
        await _until(lambda: len(clock.latencies) >= n, wait_s)
    consumer.request_stop()
    await consumer_task
    return clock.run(n)


async def raw_side(bootstrap: str, topic: str, rate: int, n: int, wait_s: float) -> Run:
    import fastavro
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    parsed = default_catalog().parsed(OrderPlaced.avro_name)
    clock = Clock(n)
    batch = _numbered(n)
    async with EventProducer(
        KafkaTransport(KafkaSettings(bootstrap_servers=bootstrap)), InMemorySchemaRegistryClient()
    ) as builder:
        records = [await builder.build(topic, e) for e in batch]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await consumer.start()
    await producer.start()
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    stop = asyncio.Event()

    async def consume() -> None:
        while not stop.is_set():
            for got in (await consumer.getmany(timeout_ms=100)).values():
                for record in got:
                    body: Any = fastavro.schemaless_reader(
                        io.BytesIO(record.value[5:]), parsed, None
                    )
                    clock.arrived(body["client_order_id"] or "")

    async def send(i: int, _event: Event) -> None:
        r = records[i + WARM_UP if i >= 0 else -1 - i]
        await producer.send(topic, value=r.value, key=r.key, headers=list(r.headers))

    reader = asyncio.create_task(consume())
    try:
        await _open_loop(batch, rate, clock, send)
        await _until(lambda: len(clock.latencies) >= n, wait_s)
    finally:
        stop.set()
        await reader
        await producer.stop()
        await consumer.stop()
    return clock.run(n)


async def measure(rates: list[int], seconds: float, rounds: int) -> dict[str, Any]:
    bootstrap = harness.env("KAFKA_BOOTSTRAP_SERVERS")
    rows: list[dict[str, Any]] = []
    by_rate: dict[str, harness.Rounds] = {}
    async with harness.topics(bootstrap) as make_topic:
        for rate in rates:
            n = max(1, int(rate * seconds))
            wait_s = seconds + 30

            async def typed(rate: int = rate, n: int = n, wait_s: float = wait_s) -> Run:
                return await typed_side(bootstrap, await make_topic(), rate, n, wait_s)

            async def raw(rate: int = rate, n: int = n, wait_s: float = wait_s) -> Run:
                return await raw_side(bootstrap, await make_topic(), rate, n, wait_s)

            got = await harness.interleave({"typed": typed, "raw": raw}, rounds, seed=rate)
            label = f"{rate:,} msg/s"
            rows += [
                got.ratio(f"e2e p50 typed ÷ raw ({label})", "typed p50_ms", "raw p50_ms"),
                got.ratio(f"e2e p99 typed ÷ raw ({label})", "typed", "raw"),
                got.measure(f"e2e p50 typed ({label})", "typed p50_ms", "ms"),
                got.measure(f"e2e p99 typed ({label})", "typed", "ms"),
                got.measure(f"e2e p50 raw ({label})", "raw p50_ms", "ms"),
                got.measure(f"e2e p99 raw ({label})", "raw", "ms"),
            ]
            by_rate[label] = got
    return {
        "params": {"rates": rates, "seconds": seconds, "rounds": rounds},
        "rows": rows,
        **harness.groups(by_rate),
    }


@app.command()
def main(
    rates: str = typer.Option("1000,5000", help="Open-loop rates in msg/s, comma-separated."),
    seconds: float = typer.Option(2.0, min=0.1, help="Seconds of sending per run."),
    rounds: int = typer.Option(3, min=1, help="Interleaved rounds (medians)."),
    out: Path | None = harness.OUT_OPTION,
) -> None:
    try:
        parsed = [int(r) for r in rates.split(",") if r.strip()]
    except ValueError:
        raise typer.BadParameter("--rates takes integers, e.g. 1000,5000") from None
    harness.run("latency", measure(parsed, seconds, rounds), out)


if __name__ == "__main__":
    app()
