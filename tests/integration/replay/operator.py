"""The operator's view for CLI tests: run ``streaming`` as a child process (this
worktree's code), and look at topics with an independent client (confluent-kafka)."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as CTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[3]
STREAMING = [sys.executable, "-m", "streaming"]


def cli_env(bootstrap: str, **extra: str) -> dict[str, str]:
    """The environment of a child ``streaming``: this worktree's code, one broker."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def cli(
    *args: str, env: Mapping[str, str], stdin: str = "", timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """``streaming ARGS`` with stdout and stderr piped (not a terminal)."""
    return subprocess.run(
        [*STREAMING, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=ROOT,
        timeout=timeout_s,
        check=False,
    )


def timed(*args: str, env: Mapping[str, str]) -> tuple[float, float, str]:
    """``streaming ARGS`` piped: its wall time, its CPU time (user + system) and stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = cli(*args, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, done.stderr
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def startup_s(env: Mapping[str, str]) -> float:
    """Wall time of a command that does nothing (interpreter and imports): the floor every
    command pays, subtracted where a test bounds what the command itself does."""
    started = time.perf_counter()
    done = cli("--help", env=env)
    assert done.returncode == 0, done.stderr
    return time.perf_counter() - started


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(
    bootstrap: str, name: str, partitions: int = 1, config: Mapping[str, str] | None = None
) -> str:
    client = admin(bootstrap)  # alive until the result is in
    futures = client.create_topics([NewTopic(name, partitions, 1, config=dict(config or {}))])
    futures[name].result(timeout=30)
    return name


def delete_topics(bootstrap: str, *names: str) -> None:
    client = admin(bootstrap)
    existing = set(client.list_topics(timeout=10).topics)
    doomed = [n for n in names if n in existing]
    if doomed:
        for future in client.delete_topics(doomed).values():
            future.result(timeout=30)


def topics(bootstrap: str) -> set[str]:
    return set(admin(bootstrap).list_topics(timeout=10).topics)


def produce(
    bootstrap: str,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes | None]],
    partition: int | None = None,
) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for number, (key, value) in enumerate(records):
        if partition is None:
            producer.produce(topic, value, key)
        else:
            producer.produce(topic, value, key, partition=partition)
        if number % 5000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4().hex}"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return {
            p: consumer.get_watermark_offsets(CTopicPartition(topic, p), timeout=10)[1]
            for p in sorted(meta.partitions)
        }
    finally:
        consumer.close()


def read_values(bootstrap: str, topic: str) -> list[bytes | None]:
    """Every committed value of ``topic`` up to its end, partition by partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"probe-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    values: list[bytes | None] = []
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        for p in sorted(meta.partitions):
            tp = CTopicPartition(topic, p, 0)
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            if high <= low:
                continue
            consumer.assign([CTopicPartition(topic, p, low)])
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None:
                    # transaction markers take offsets too: done once the position
                    # passed the end
                    if consumer.position([CTopicPartition(topic, p)])[0].offset >= high:
                        break
                    continue
                if not msg.error():
                    values.append(msg.value())
            consumer.unassign()
    finally:
        consumer.close()
    return values


_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z \[")


def said(stderr: str) -> list[str]:
    """What a command told its user on stderr: the lines that are not log records."""
    return [line for line in stderr.splitlines() if not _LOG_LINE.match(line)]


def one_line(text: str) -> str:
    """``text`` without its trailing newline; fails if it spans several lines."""
    lines = text.strip("\n").splitlines()
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{text}"
    return lines[0]
