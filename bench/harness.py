"""The one harness every bench script uses.

Contenders run interleaved (a shuffled A, B, C order per round, so warm-up and neighbour
noise favour none), a round in which any contender lost records is dropped (and counted),
ratios are reported as the median over the kept rounds with their min and max, and every
script merges its section into ``bench/results/<date>.json``, then redraws the chart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
console = Console(stderr=True, width=150)
# ``--out``: the results file a script merges its section into.
OUT_OPTION: Any = typer.Option(None, help="Results file to merge into [bench/results/<date>.json].")


@dataclass(frozen=True)
class Goal:
    """``op`` is ``>=`` or ``<=``; ``value`` is the target from issue 15."""

    op: str
    value: float

    def met(self, value: float) -> bool:
        return value >= self.value if self.op == ">=" else value <= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


# Every goal of issue 15, by the name the scripts report it under.
GOALS: dict[str, Goal] = {
    "typed consumer ÷ raw getmany+fastavro": Goal(">=", 0.6),
    "typed consumer ÷ FastStream": Goal(">=", 2.0),
    "typed send loop ÷ raw aiokafka send() (100 B)": Goal(">=", 0.85),
    "typed send loop ÷ raw aiokafka send() (1 KiB)": Goal(">=", 0.85),
    "typed send loop ÷ confluent typed (100 B)": Goal(">=", 1.0),
    "typed send loop ÷ confluent typed (1 KiB)": Goal(">=", 1.0),
    "audit sink ÷ plain sink": Goal(">=", 0.7),
    "registry GET /schemas/ids req/s": Goal(">=", 8000),
    "registry GET /schemas/ids p99 ms": Goal("<=", 10),
    "registry POST /subjects lookup req/s": Goal(">=", 8000),
    "registry POST /subjects lookup p99 ms": Goal("<=", 10),
    "consumer RSS last ÷ first": Goal("<=", 1.10),
    "sink RSS last ÷ first": Goal("<=", 1.10),
    "registry RSS last ÷ first": Goal("<=", 1.10),
}


@dataclass(frozen=True)
class Run:
    """One contender's measurement; ``expected`` > ``seen`` means records were lost."""

    value: float
    expected: int = 0
    seen: int = 0
    extra: Mapping[str, float] = field(default_factory=dict)  # e.g. a p99 beside a rate

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.seen)


Contender = Callable[[], Awaitable[Run]]


@dataclass
class Rounds:
    """The kept rounds of an interleaved run, plus what was dropped."""

    runs: dict[str, list[float]] = field(default_factory=dict)
    dropped: int = 0
    lost_records: int = 0

    def stat(self, name: str, unit: str = "msg/s") -> dict[str, Any]:
        return spread(self.runs.get(name, []), unit=unit)

    def ratio(self, name: str, num: str, den: str, *, invert: bool = False) -> dict[str, Any]:
        """Per-round ``num / den`` (``den / num`` with ``invert``: lower-is-better values)."""
        pairs = zip(self.runs.get(num, []), self.runs.get(den, []), strict=True)
        values = [(d / n if invert else n / d) for n, d in pairs if n and d]
        return entry(name, values)

    def measure(self, name: str, contender: str, unit: str) -> dict[str, Any]:
        """An absolute measure (e.g. req/s) of one contender over the kept rounds."""
        return entry(name, self.runs.get(contender, []), unit)

    def summary(self) -> dict[str, Any]:
        return {
            "contenders": {name: self.stat(name) for name in self.runs},
            "dropped_rounds": self.dropped,
            "lost_records": self.lost_records,
        }


def groups(by_label: Mapping[str, Rounds]) -> dict[str, Any]:
    """Summaries of several interleaved runs (per size, rate or service) and their totals."""
    return {
        "groups": {label: rounds.summary() for label, rounds in by_label.items()},
        "dropped_rounds": sum(r.dropped for r in by_label.values()),
        "lost_records": sum(r.lost_records for r in by_label.values()),
    }


def spread(values: list[float], *, unit: str = "") -> dict[str, Any]:
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0, "unit": unit}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "unit": unit,
    }


def entry(name: str, values: list[float], unit: str = "") -> dict[str, Any]:
    """A reported measure: its spread and, when issue 15 set one, its goal and verdict."""
    row = {"name": name, **spread(values, unit=unit)}
    goal = GOALS.get(name)
    row["goal"] = str(goal) if goal else None
    row["met"] = goal.met(row["median"]) if goal and row["median"] is not None else None
    return row


async def interleave(contenders: Mapping[str, Contender], rounds: int, *, seed: int = 0) -> Rounds:
    """Run every contender once per round in a shuffled order; drop lossy rounds."""
    result = Rounds()
    for r in range(rounds):
        order = list(contenders)
        random.Random(seed * 1000 + r).shuffle(order)
        got: dict[str, Run] = {}
        for name in order:
            got[name] = await contenders[name]()
        lost = sum(run.lost for run in got.values())
        if lost:
            losers = ", ".join(f"{n} lost {run.lost}" for n, run in got.items() if run.lost)
            console.print(f"[yellow]round {r + 1} dropped: {losers}[/yellow]")
            result.dropped += 1
            result.lost_records += lost
            continue
        for name, run in got.items():
            result.runs.setdefault(name, []).append(run.value)
            for key, value in run.extra.items():
                result.runs.setdefault(f"{name} {key}", []).append(value)
    return result


# --------------------------------------------------------------------------- results


def default_out() -> Path:
    return RESULTS / f"{datetime.now(UTC).date().isoformat()}.json"


def _commit() -> str:
    proc = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() or "unknown"


def quiet() -> None:
    """Library logs at WARNING on stderr: stdout of a child carries its JSON result."""
    from streaming.config import LoggingSettings
    from streaming.logging import configure_logging

    configure_logging(LoggingSettings(level="WARNING"), stream=sys.stderr)


def run(section: str, measure: Coroutine[Any, Any, dict[str, Any]], out: Path | None) -> None:
    """A bench script's main: run ``measure``, then :func:`publish` its payload."""
    quiet()
    publish(section, asyncio.run(measure), out or default_out())


def publish(section: str, payload: dict[str, Any], out: Path) -> None:
    """Merge ``payload`` as ``section`` into ``out``, print its rows, redraw the chart."""
    from bench import report  # matplotlib loads only when results are written

    out.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    data.setdefault("sections", {})[section] = payload
    data["commit"] = _commit()
    data["written_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    data["machine"] = {"cpus": os.cpu_count(), "loadavg_1m": os.getloadavg()[0]}
    out.write_text(json.dumps(data, indent=2) + "\n")
    report.print_table(data, only=section)
    report.chart(data, out.with_suffix(".png"))


# --------------------------------------------------------------------------- processes


CHILD_FLAG = "--child"


async def run_child(module: str, job: str, timeout_s: float = 300, **kwargs: Any) -> Any:
    """Run ``job`` of ``module`` in a fresh interpreter; its last stdout line is JSON."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        CHILD_FLAG,
        job,
        json.dumps(kwargs),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    if proc.returncode != 0:
        raise SystemExit(f"{module} {job} failed (exit {proc.returncode})")
    return json.loads(stdout.decode().strip().splitlines()[-1])


def child_main(jobs: Mapping[str, Callable[..., Any]]) -> bool:
    """Dispatch ``--child JOB ARGS`` (see :func:`run_child`); False when not a child."""
    if len(sys.argv) != 4 or sys.argv[1] != CHILD_FLAG:
        return False
    quiet()
    result = jobs[sys.argv[2]](**json.loads(sys.argv[3]))
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    sys.stdout.write(json.dumps(result) + "\n")
    return True


def rss_mib(pid: int | str = "self") -> float:
    """Resident set size from /proc, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f'set {name} (eval "$(streaming dev env)")')
    return value


@contextlib.asynccontextmanager
async def registry_process(bootstrap: str) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """Our registry in a subprocess on a fresh store topic; yields (url, process)."""
    port = free_port()
    topic = f"_schemas-bench-{uuid.uuid4().hex[:8]}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "streaming",
        "registry",
        "serve",
        "--port",
        str(port),
        "--topic",
        topic,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "LOG_LEVEL": "WARNING"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=1) as client:
            while not await _ready(client, url):
                if time.monotonic() > deadline or proc.returncode is not None:
                    raise SystemExit("the registry did not become ready within 60 s")
                await asyncio.sleep(0.2)  # poll
        yield url, proc
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
        await _delete_topics(bootstrap, [topic])


async def _ready(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(f"{url}/ready")).status_code == 200
    except httpx.HTTPError:
        return False


async def _delete_topics(bootstrap: str, names: list[str]) -> None:
    from streaming.config import KafkaSettings
    from streaming.transport.kafka import KafkaTransport

    admin = KafkaTransport(KafkaSettings(bootstrap_servers=bootstrap)).admin()
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.stop()


@contextlib.asynccontextmanager
async def topics(bootstrap: str) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """``await make(partitions)`` -> a fresh topic, all deleted when the block ends."""
    from streaming.config import KafkaSettings
    from streaming.transport.base import TopicSpec
    from streaming.transport.kafka import KafkaTransport

    admin = KafkaTransport(KafkaSettings(bootstrap_servers=bootstrap)).admin()
    await admin.start()
    made: list[str] = []

    async def make(partitions: int = 1) -> str:
        name = f"bench-{uuid.uuid4().hex[:10]}"
        await admin.create_topics([TopicSpec(name, partitions)])
        made.append(name)
        return name

    try:
        yield make
    finally:
        if made:
            await admin.delete_topics(made)
        await admin.stop()


async def end_offsets(bootstrap: str, topic: str) -> int:
    """Records stored in ``topic`` (sum of its partitions' end offsets)."""
    from streaming.config import KafkaSettings
    from streaming.transport.base import TopicPartition
    from streaming.transport.kafka import KafkaTransport

    consumer = KafkaTransport(KafkaSettings(bootstrap_servers=bootstrap)).consumer(group_id=None)
    await consumer.start()
    try:
        parts = await consumer.partitions_for(topic)
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in parts])
        return int(sum(ends.values()))
    finally:
        await consumer.stop()


def telemetry() -> Any:
    """Tracing and metrics on (SDK providers, in-memory metric reader, no exporter).

    Every contender that has them gets the same setup, so neither side skips the work.
    """
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from streaming.config import OtelSettings
    from streaming.telemetry import configure_telemetry

    return configure_telemetry(
        OtelSettings(traces_enabled=True, metrics_enabled=True, exporter_otlp_endpoint=None),
        metric_readers=[InMemoryMetricReader()],
        set_global=False,
    )


def traced_consumer(
    bootstrap: str, registry: Any, topic: str, telemetry_: Any, **options: Any
) -> Any:
    """The typed consumer every bench measures: a fresh group, no failure topics, traced."""
    from streaming.clients.consumer import EventConsumer
    from streaming.config import KafkaSettings
    from streaming.transport.kafka import KafkaTransport

    return EventConsumer(
        KafkaTransport(KafkaSettings(bootstrap_servers=bootstrap)),
        registry,
        topics=[topic],
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        create_failure_topics=False,
        tracer=telemetry_.tracer,
        instruments=telemetry_.instruments,
        **options,
    )
