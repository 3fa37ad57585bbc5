"""The physical-limit anchor: Kafka's own ProducerPerformance and ConsumerPerformance.

The broker jars the local stack caches do not hold ``org.apache.kafka.tools``, so the
``kafka-tools`` artifact of the same Kafka version is resolved with ``mvn`` the way the
devstack resolves the broker (a generated pom, ``dependency:copy-dependencies``), and
cached beside it.
"""

from __future__ import annotations

import asyncio
import re

from bench.harness import Run
from streaming.devstack.kafka import KAFKA_VERSION, cache_dir, check_java, fetch_jars
from streaming.errors import DevStackError

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.tradesense</groupId>
  <artifactId>kafka-tools-runtime</artifactId>
  <version>{kafka}</version>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId>
      <version>{kafka}</version>
    </dependency>
  </dependencies>
</project>
"""


def classpath() -> str:
    """The kafka-tools jars (downloaded once); raises SystemExit saying what is missing."""
    try:
        libs = fetch_jars(
            cache_dir().parent / f"kafka-tools-{KAFKA_VERSION}",
            _POM.format(kafka=KAFKA_VERSION),
            what=f"kafka-tools {KAFKA_VERSION} jars",
            progress=lambda _: None,
        )
    except DevStackError as exc:
        raise SystemExit(str(exc)) from exc
    return f"{libs}/*"


async def _java(main: str, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        check_java(),
        "-Xmx512m",
        "-cp",
        classpath(),
        f"org.apache.kafka.tools.{main}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    stdout, _ = await asyncio.wait_for(proc.communicate(), 300)
    return stdout.decode()


async def producer_performance(bootstrap: str, topic: str, n: int, size: int) -> Run:
    """ProducerPerformance with the typed producer's settings (acks=all, idempotent, linger 5)."""
    out = await _java(
        "ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(n),
        "--record-size",
        str(size),
        "--throughput",
        "-1",
        "--producer-props",
        f"bootstrap.servers={bootstrap}",
        "acks=all",
        "enable.idempotence=true",
        "linger.ms=5",
    )
    summary = re.findall(r"(\d+) records sent, ([\d.]+) records/sec", out)
    if not summary:
        return Run(0.0, expected=n, seen=0)
    sent, rate = summary[-1]
    return Run(float(rate), expected=n, seen=int(sent))


async def consumer_performance(bootstrap: str, topic: str, n: int) -> Run:
    """ConsumerPerformance; its fetch rate (``fetch.nMsg.sec``) leaves out the group join."""
    out = await _java(
        "ConsumerPerformance",
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--messages",
        str(n),
        "--timeout",
        "30000",
    )
    lines = [line for line in out.splitlines() if line[:1].isdigit()]
    if not lines:
        return Run(0.0, expected=n, seen=0)
    fields = [f.strip() for f in lines[-1].split(",")]
    return Run(float(fields[9]), expected=n, seen=int(fields[4]))
