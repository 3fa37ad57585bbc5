"""A three-broker local cluster the fault tests can hurt and heal.

Brokers are the JVM processes ``streaming dev up --brokers 3`` started (node ids 1..3 in
the order of ``state.kafka.pids``); who leads what is asked with an independent
confluent-kafka client (metadata requests of a plain consumer: with AdminClient futures
in flight while brokers died, the test process aborted inside librdkafka), and the active
KRaft controller is read from the nodes' ``quorum-state`` files (the Admin API only names
a random broker as "controller").
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import ClusterMetadata

from streaming.config import KafkaSettings
from streaming.devstack import DevStack, StackState
from streaming.devstack.procs import pid_alive, wait_until
from streaming.transport.kafka import KafkaTransport


@dataclass
class Cluster:
    """The running stack plus signals for its brokers."""

    stack: DevStack
    state: StackState
    _meta: Consumer | None = None

    @property
    def bootstrap(self) -> str:
        assert self.state.kafka is not None
        return self.state.kafka.address

    @property
    def registry_url(self) -> str:
        assert self.state.registry is not None, "the fault cluster runs a registry"
        return self.state.registry.address

    def metadata(self, topic: str | None = None) -> ClusterMetadata:
        if self._meta is None:
            self._meta = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "faults-meta"})
        return self._meta.list_topics(topic, timeout=5)

    def close(self) -> None:
        if self._meta is not None:
            self._meta.close()
            self._meta = None

    def transport(self) -> KafkaTransport:
        return KafkaTransport(KafkaSettings(bootstrap_servers=self.bootstrap))

    def pid(self, node: int) -> int:
        assert self.state.kafka is not None
        return self.state.kafka.pids[node - 1]

    @property
    def nodes(self) -> list[int]:
        assert self.state.kafka is not None
        return list(range(1, len(self.state.kafka.pids) + 1))

    # -- who does what
    def leader_of(self, topic: str, partition: int = 0) -> int:
        meta = self.metadata(topic)
        leader: int = meta.topics[topic].partitions[partition].leader
        assert leader > 0, f"{topic}-{partition} has no leader"
        return leader

    def replicas_of(self, topic: str, partition: int = 0) -> list[int]:
        meta = self.metadata(topic)
        return list(meta.topics[topic].partitions[partition].replicas)

    def controller(self) -> int:
        """The active KRaft controller: the newest leader epoch any live node recorded."""
        assert self.state.kafka is not None and self.state.kafka.data_dir is not None
        best = (-1, -1)
        for node in self.nodes:
            if not pid_alive(self.pid(node)):
                continue
            path = (
                Path(self.state.kafka.data_dir)
                / f"node-{node}"
                / "data"
                / "__cluster_metadata-0"
                / "quorum-state"
            )
            try:
                quorum = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            best = max(best, (int(quorum.get("leaderEpoch", -1)), int(quorum.get("leaderId", -1))))
        assert best[1] > 0, "no node knows the KRaft leader"
        return best[1]

    # -- faults
    def kill(self, node: int) -> None:
        os.kill(self.pid(node), signal.SIGKILL)
        wait_until(lambda: not pid_alive(self.pid(node)), timeout_s=10, what=f"broker {node} dead")

    def pause(self, node: int) -> None:
        os.kill(self.pid(node), signal.SIGSTOP)

    def resume(self, node: int) -> None:
        os.kill(self.pid(node), signal.SIGCONT)

    def restart(self, node: int) -> None:
        self.stack.restart_broker(node)
        self.state = self.stack.load() or self.state

    def heal(self) -> None:
        """Every broker running again (restart the dead, wake the stopped), fully in sync."""
        for node in self.nodes:
            if pid_alive(self.pid(node)):
                os.kill(self.pid(node), signal.SIGCONT)
            else:
                self.restart(node)
        self.wait_in_sync()

    def wait_in_sync(self, timeout_s: float = 120.0) -> None:
        """Until all brokers are registered and every partition has its full ISR."""

        def in_sync() -> bool:
            try:
                meta = self.metadata()
            except KafkaException:  # a broker may still be starting: ask again
                return False
            if len(meta.brokers) < len(self.nodes):
                return False
            return all(
                p.leader > 0 and len(p.isrs) == len(p.replicas)
                for t in meta.topics.values()
                for p in t.partitions.values()
            )

        wait_until(
            in_sync, timeout_s=timeout_s, what="every partition back in sync", interval_s=0.5
        )
