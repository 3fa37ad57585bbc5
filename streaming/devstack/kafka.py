"""A local Apache Kafka (KRaft) for development and tests, with no Docker needed.

The broker jars come from Maven Central through ``mvn`` (a generated pom and
``dependency:copy-dependencies``), cached under the user cache directory, and run on the
local JVM as combined broker+controller nodes on free loopback ports. ``brokers=3``
gives a three-voter quorum for fault tests.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from streaming.devstack.procs import (
    Progress,
    free_port,
    port_open,
    require_tool,
    spawn,
    tail,
    wait_until,
)
from streaming.errors import DevStackError

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
MIN_JAVA = 17

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.tradesense</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{kafka}</version>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
"""


def cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("tradesense-streaming")) / f"kafka-{KAFKA_VERSION}"


def check_java() -> str:
    java = require_tool(
        "java",
        f"install a JDK {MIN_JAVA}+ (e.g. apt-get install openjdk-17-jre-headless) "
        "or set KAFKA_BOOTSTRAP_SERVERS to an existing broker",
    )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)', out.stderr + out.stdout)
    if match and int(match.group(1)) < MIN_JAVA:
        raise DevStackError(
            f"java {match.group(1)} is too old: Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+; "
            "install a newer JDK or set KAFKA_BOOTSTRAP_SERVERS"
        )
    return java


def resolve_jars(progress: Progress) -> Path:
    """Return the folder of broker jars, downloading them once with Maven."""
    return fetch_jars(
        cache_dir(),
        _POM.format(kafka=KAFKA_VERSION, log4j=LOG4J_VERSION),
        what=f"Kafka {KAFKA_VERSION} jars",
        progress=progress,
    )


def fetch_jars(root: Path, pom: str, *, what: str, progress: Progress) -> Path:
    """``root/libs``: the runtime jars of ``pom``, copied there by ``mvn`` once.

    A ``.complete`` marker makes later calls free; the benchmarks fetch Kafka's perf
    tools through this too.
    """
    libs = root / "libs"
    marker = root / ".complete"
    if marker.exists():
        progress(f"using cached {what} in {libs}")
        return libs
    mvn = require_tool(
        "mvn",
        "install Maven (e.g. apt-get install maven) so the Kafka jars can be fetched from "
        "Maven Central, or set KAFKA_BOOTSTRAP_SERVERS to an existing broker",
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / "pom.xml").write_text(pom)
    progress(f"downloading {what} from Maven Central (first run only)")
    result = subprocess.run(
        [
            mvn,
            "-B",
            "-q",
            "-f",
            str(root / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise DevStackError(
            f"mvn could not fetch the {what} (is Maven Central reachable?): "
            + (output.splitlines()[-1] if output else "mvn failed without output")
        )
    marker.write_text(KAFKA_VERSION)
    return libs


@dataclass(frozen=True)
class KafkaNode:
    node_id: int
    port: int
    controller_port: int
    pid: int
    log_path: str
    data_dir: str


def _server_properties(
    node_id: int, port: int, controller_port: int, voters: str, data_dir: Path, replication: int
) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node_id}",
            f"controller.quorum.voters={voters}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data_dir}",
            f"offsets.topic.replication.factor={replication}",
            "offsets.topic.num.partitions=10",
            f"transaction.state.log.replication.factor={replication}",
            f"transaction.state.log.min.isr={min(replication, 2)}",
            "transaction.state.log.num.partitions=10",
            f"share.coordinator.state.topic.replication.factor={replication}",
            f"share.coordinator.state.topic.min.isr={min(replication, 2)}",
            f"default.replication.factor={replication}",
            f"min.insync.replicas={min(replication, 2)}",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "num.partitions=1",
            "log.cleaner.backoff.ms=500",
            "log.retention.check.interval.ms=5000",
            "",
        ]
    )


def start_local_kafka(
    state_dir: Path, brokers: int, progress: Progress, timeout_s: float = 90.0
) -> tuple[str, list[KafkaNode]]:
    """Format and start ``brokers`` KRaft nodes; return (bootstrap, nodes)."""
    java = check_java()
    libs = resolve_jars(progress)
    classpath = f"{libs}/*"
    root = state_dir / "kafka"
    # A stopped stack's logs belong to another cluster id; every start is a fresh cluster.
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    (root / "log4j2.yaml").write_text(_LOG4J2)
    cluster_id = _random_cluster_id()
    ports = [(free_port(), free_port()) for _ in range(brokers)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports))
    replication = min(brokers, 3)
    nodes: list[KafkaNode] = []
    for index, (port, controller_port) in enumerate(ports):
        node_id = index + 1
        node_dir = root / f"node-{node_id}"
        data_dir = node_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        props = node_dir / "server.properties"
        props.write_text(
            _server_properties(node_id, port, controller_port, voters, data_dir, replication)
        )
        progress(f"formatting Kafka storage for node {node_id}")
        fmt = subprocess.run(
            [
                java,
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id}",
                "-c",
                str(props),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if fmt.returncode != 0:
            raise DevStackError(f"kafka storage format failed: {fmt.stderr.strip() or fmt.stdout}")
        log_path = node_dir / "kafka.log"
        pid = spawn(_node_argv(java, classpath, root, props), log_path=log_path)
        nodes.append(KafkaNode(node_id, port, controller_port, pid, str(log_path), str(data_dir)))
    progress(f"waiting for {brokers} Kafka broker(s) to accept connections")
    for node in nodes:
        wait_until(
            lambda n=node: port_open("127.0.0.1", n.port),  # type: ignore[misc]
            timeout_s=timeout_s,
            what=f"Kafka node {node.node_id} on 127.0.0.1:{node.port}",
            hint=f"; last log lines:\n{tail(Path(node.log_path))}",
        )
    bootstrap = ",".join(f"127.0.0.1:{n.port}" for n in nodes)
    return bootstrap, nodes


def _node_argv(java: str, classpath: str, root: Path, props: Path) -> list[str]:
    return [
        java,
        "-Xms256m",
        "-Xmx768m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={root / 'log4j2.yaml'}",
        "-cp",
        classpath,
        "kafka.Kafka",
        str(props),
    ]


def restart_local_node(state_dir: Path, node_id: int) -> int:
    """Start a stopped node of a local cluster again on its own data; return its pid.

    Fault tests kill a node and restart it, as an operator would after a crash.
    """
    root = state_dir / "kafka"
    node_dir = root / f"node-{node_id}"
    props = node_dir / "server.properties"
    if not props.exists():
        raise DevStackError(f"no Kafka node {node_id} under {root}; run 'streaming dev up' first")
    argv = _node_argv(check_java(), f"{cache_dir() / 'libs'}/*", root, props)
    return spawn(argv, log_path=node_dir / "kafka.log")


def _random_cluster_id() -> str:
    """A KRaft cluster id as ``StorageTool random-uuid`` makes it, without a JVM start.

    Like Kafka's ``Uuid.randomUuid`` it never starts with '-', which a command line would
    read as an option.
    """
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def start_docker_kafka(progress: Progress) -> tuple[str, str]:
    """Start ``apache/kafka`` in KRaft mode with testcontainers; return (bootstrap, id).

    Ryuk is disabled so the container outlives this process; ``dev down`` removes it.
    """
    import os

    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    from testcontainers.kafka import KafkaContainer

    progress(f"starting apache/kafka:{KAFKA_VERSION} in Docker")
    container = KafkaContainer(image=f"apache/kafka:{KAFKA_VERSION}").with_kraft()
    container.start()
    bootstrap = container.get_bootstrap_server()
    wrapped = container.get_wrapped_container()
    return bootstrap, str(wrapped.id)
