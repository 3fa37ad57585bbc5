"""Resident memory over a long run: typed consumer, audit sink and registry stay flat?

Not a test. Each service runs in its own process, RSS read from ``/proc/<pid>/status``:

- ``consumer``: ``EventConsumer`` (tracing and metrics on) reading ``--records`` events,
  RSS sampled every 2% of them;
- ``sink``: the audit sink storing ``--records`` audit events, RSS sampled as it goes;
- ``registry``: our registry under ``wrk -t2 -c16`` GET load for ``--registry-seconds``,
  RSS sampled every half second.

The first 10% (the first 10% of the time for the registry) is warm-up; the goal is
``last ÷ first`` RSS after warm-up <= 1.10. Values in MiB.

    python -m bench.bench_memory [--records 200000] [--registry-seconds 20]
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import typer
from pydantic import SecretStr

from bench import harness
from bench.bench_audit_sink import fill, settings, sink_rate
from bench.bench_producer import events
from bench.bench_registry import register, wrk
from bench.harness import Run
from streaming.clients.producer import EventProducer
from streaming.config import DatabaseSettings, KafkaSettings, RegistrySettings
from streaming.db import Database
from streaming.events import OrderPlaced
from streaming.serde import InMemorySchemaRegistryClient
from streaming.serde.client import SchemaRegistryClient
from streaming.transport.kafka import KafkaTransport

app = typer.Typer(add_completion=False)
WARM_UP = 0.10


class Sampler:
    """RSS samples keyed by progress (records, or seconds); warm-up ones are kept apart."""

    def __init__(self, total: float) -> None:
        self.total = total
        self.step = total / 50
        self.next = 0.0
        self.samples: list[tuple[float, float]] = []

    def at(self, progress: float, pid: int | str = "self") -> None:
        if progress >= self.next:
            self.samples.append((progress, harness.rss_mib(pid)))
            self.next = progress + self.step

    def result(self, seen: int, expected: int) -> dict[str, Any]:
        steady = [mib for at, mib in self.samples if at >= self.total * WARM_UP]
        if len(steady) < 2:
            return {"growth": 0.0, "seen": seen, "expected": expected, "samples": self.samples}
        return {
            "growth": steady[-1] / steady[0],
            "first_mib": steady[0],
            "last_mib": steady[-1],
            "max_mib": max(steady),
            "seen": seen,
            "expected": expected,
            "samples": self.samples,
        }


async def consumer_job(
    bootstrap: str, registry_url: str, topic: str, n: int, deadline_s: float
) -> Any:
    """Child job: the typed consumer over ``n`` events, sampling its own RSS."""
    tel = harness.telemetry()
    sampler = Sampler(n)
    seen = 0
    async with SchemaRegistryClient(RegistrySettings(url=registry_url)) as registry:
        consumer = harness.traced_consumer(bootstrap, registry, topic, tel)

        async def handle(event: OrderPlaced) -> None:
            nonlocal seen
            seen += 1
            sampler.at(seen)
            if seen >= n:
                consumer.request_stop()

        consumer.add_handler(OrderPlaced, handle)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(consumer.run(), deadline_s)
    return sampler.result(seen, n)


async def sink_job(bootstrap: str, database_url: str, topic: str, n: int, deadline_s: float) -> Any:
    """Child job: the audit sink over ``n`` events, sampling its own RSS."""
    database = Database(DatabaseSettings(url=SecretStr(database_url)))
    schema = f"bench_audit_{uuid.uuid4().hex[:8]}"
    sampler = Sampler(n)
    try:
        _, rows = await sink_rate(
            KafkaTransport(KafkaSettings(bootstrap_servers=bootstrap)),
            database,
            InMemorySchemaRegistryClient(),
            settings(topic, schema, 1000),
            n,
            deadline_s,
            on_progress=sampler.at,
        )
    finally:
        async with database.connect() as conn:
            from sqlalchemy import text

            await conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            await conn.commit()
        await database.close()
    return sampler.result(rows, n)


def _run(got: dict[str, Any]) -> Run:
    extra: dict[str, float] = {k: got[k] for k in ("first_mib", "last_mib", "max_mib") if k in got}
    return Run(got["growth"], expected=got["expected"], seen=got["seen"], extra=extra)


async def registry_run(url: str, pid: int, seconds: float) -> Run:
    get, _ = await register(url, 20)
    sampler = Sampler(seconds)
    load = asyncio.create_task(wrk(url, get, seconds, 2, 16))
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not load.done():
        sampler.at(loop.time() - started, pid)
        await asyncio.sleep(0.5)  # the sampling interval
    ran = await load
    return _run(sampler.result(ran.seen, ran.expected))


async def measure(records: int, registry_seconds: float, deadline_s: float) -> dict[str, Any]:
    bootstrap = harness.env("KAFKA_BOOTSTRAP_SERVERS")
    database_url = harness.env("DATABASE_URL")
    transport = KafkaTransport(KafkaSettings(bootstrap_servers=bootstrap))
    module = __spec__.name
    timeout = deadline_s + 120
    async with (
        harness.registry_process(bootstrap) as (url, proc),
        harness.topics(bootstrap) as make_topic,
    ):
        orders, audits = await make_topic(), await make_topic(3)
        async with (
            SchemaRegistryClient(RegistrySettings(url=url)) as registry,
            EventProducer(transport, registry) as producer,
        ):
            chunk = events(1000, 0)  # built once: the consumer's work, not the fill, matters
            for start in range(0, records, 1000):
                await producer.send_many(orders, chunk[: records - start])
        await fill(transport, InMemorySchemaRegistryClient(), audits, records)
        job = {"bootstrap": bootstrap, "n": records, "deadline_s": deadline_s}

        async def consumer() -> Run:
            got = await harness.run_child(
                module, "consumer", timeout, registry_url=url, topic=orders, **job
            )
            return _run(got)

        async def sink() -> Run:
            got = await harness.run_child(
                module, "sink", timeout, database_url=database_url, topic=audits, **job
            )
            return _run(got)

        async def registry_load() -> Run:
            assert proc.pid is not None
            return await registry_run(url, proc.pid, registry_seconds)

        # One service at a time, each its own "round": a loss in one hides no other.
        services = {"consumer": consumer, "sink": sink, "registry": registry_load}
        got = {name: await harness.interleave({name: run}, 1) for name, run in services.items()}
    rows = []
    for name, rounds in got.items():
        rows += [
            rounds.measure(f"{name} RSS last ÷ first", name, ""),
            rounds.measure(f"{name} RSS after warm-up", f"{name} first_mib", "MiB"),
            rounds.measure(f"{name} RSS at the end", f"{name} last_mib", "MiB"),
        ]
    return {
        "params": {"records": records, "registry_seconds": registry_seconds},
        "rows": rows,
        **harness.groups(got),
    }


@app.command()
def main(
    records: int = typer.Option(200_000, min=100, help="Records the consumer and sink handle."),
    registry_seconds: float = typer.Option(20.0, min=1, help="Seconds of wrk load."),
    deadline: float = typer.Option(300.0, help="Seconds a service gets for all records."),
    out: Path | None = harness.OUT_OPTION,
) -> None:
    harness.run("memory", measure(records, registry_seconds, deadline), out)


if __name__ == "__main__" and not harness.child_main({"consumer": consumer_job, "sink": sink_job}):
    app()
