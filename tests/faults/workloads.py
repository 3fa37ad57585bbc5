"""Workloads the faults land on: an idempotent producer, consumer-group members and
registry instances.

Members are ``EventConsumer`` subprocesses (``tests/integration/clients/consumer_proc.py``)
that append each handled event id to a file, so deliveries are counted from outside.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from streaming.clients.producer import EventProducer
from streaming.config import KafkaSettings, RegistrySettings
from streaming.devstack.procs import free_port
from streaming.errors import StreamingError
from streaming.events import OrderPlaced
from streaming.events.fake import fake_events
from streaming.serde.client import SchemaRegistryClient
from streaming.transport.kafka import KafkaTransport

MEMBER = Path(__file__).parents[1] / "integration" / "clients" / "consumer_proc.py"
BATCH = 50
RATE = int(os.environ.get("FAULTS_RATE", "1000"))  # events/s the producer loop aims at


@dataclass
class ProduceRun:
    """What a producer loop saw: acknowledged ids and when each batch started and ended."""

    acknowledged: set[str] = field(default_factory=set)
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    batches: list[tuple[float, float]] = field(default_factory=list)  # (started, acked)

    def recovery_s(self, fault_at: float) -> float | None:
        """Seconds from ``fault_at`` until a batch begun after it was acknowledged."""
        after = [acked for started, acked in self.batches if started >= fault_at]
        return min(after) - fault_at if after else None


async def produce_until(
    bootstrap: str, registry_url: str, topic: str, stop: asyncio.Event, seed: int
) -> ProduceRun:
    """``send_many`` batches of OrderPlaced until ``stop`` is set; never retries a batch
    itself (the idempotent producer retries inside), so a failed batch is unacknowledged."""
    run = ProduceRun()
    rng = random.Random(seed)
    transport = KafkaTransport(KafkaSettings(bootstrap_servers=bootstrap))
    async with (
        SchemaRegistryClient(RegistrySettings(url=registry_url)) as registry,
        EventProducer(transport, registry, linger_ms=5) as producer,
    ):
        while not stop.is_set():
            events = list(fake_events(OrderPlaced, BATCH, rng=rng))
            started = time.monotonic()
            # Pace the loop: a steady rate, not a flood that starves two shared cores.
            next_at = started + BATCH / RATE
            try:
                await producer.send_many(topic, events)
            except StreamingError as exc:
                run.failed += len(events)
                run.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            run.batches.append((started, time.monotonic()))
            run.acknowledged |= {str(e.event_id) for e in events}
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))  # pace
    return run


async def produce_all(bootstrap: str, registry_url: str, topic: str, count: int) -> set[str]:
    """Write ``count`` OrderPlaced events (healthy cluster); return their ids."""
    transport = KafkaTransport(KafkaSettings(bootstrap_servers=bootstrap))
    events = list(fake_events(OrderPlaced, count, rng=random.Random(count)))
    async with (
        SchemaRegistryClient(RegistrySettings(url=registry_url)) as registry,
        EventProducer(transport, registry, linger_ms=20) as producer,
    ):
        for start in range(0, count, 500):
            await producer.send_many(topic, events[start : start + 500])
    return {str(e.event_id) for e in events}


class Member:
    """One consumer-group member in a subprocess; its handled ids land in ``out``."""

    def __init__(
        self, env: dict[str, str], topic: str, group: str, out: Path, work_s: float = 0.001
    ) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(MEMBER),
                env["KAFKA_BOOTSTRAP_SERVERS"],
                env["REGISTRY_URL"],
                topic,
                group,
                str(out),
                str(work_s),  # work per event, so a signal lands mid-batch
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def handled(self) -> Counter[str]:
        return Counter(self.out.read_text().split()) if self.out.exists() else Counter()

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.proc.pid, sig)

    def assert_alive(self) -> None:
        if self.proc.poll() is not None:
            detail = self.proc.stderr.read().decode()[-2000:] if self.proc.stderr else ""
            raise AssertionError(f"member exited with {self.proc.returncode}: {detail}")

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM (after SIGCONT, in case it is stopped) and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"member {self.proc.pid} ignored SIGTERM for {timeout_s}s"
            ) from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()


def delivered(*members: Member) -> Counter[str]:
    total: Counter[str] = Counter()
    for m in members:
        total += m.handled()
    return total


async def wait_for(check: Callable[[], bool], *, timeout_s: float, what: str) -> float:
    """Poll ``check`` until true; return the seconds it took (fails after ``timeout_s``)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not check():
        if loop.time() - started > timeout_s:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.05)  # poll
    return loop.time() - started


class RegistryProcess:
    """One ``streaming registry serve`` process on a free port."""

    def __init__(self, env: dict[str, str], topic: str, log: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        port = self.url.rsplit(":", 1)[1]
        argv = [sys.executable, "-m", "streaming", "registry", "serve", "--port", port]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*argv, "--topic", topic], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.log = log

    async def wait_ready(self, timeout_s: float) -> None:
        async with httpx.AsyncClient(timeout=2) as http:

            async def ready() -> bool:
                if self.proc.poll() is not None:
                    last = self.log.read_text().strip().splitlines()[-3:]
                    raise AssertionError(
                        f"registry exited with {self.proc.returncode}: {' '.join(last)[:200]}"
                    )
                try:
                    return (await http.get(f"{self.url}/ready")).status_code == 200
                except httpx.HTTPError:
                    return False

            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            while not await ready():
                assert loop.time() < deadline, f"registry {self.url} not ready in {timeout_s}s"
                await asyncio.sleep(0.2)  # poll

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
