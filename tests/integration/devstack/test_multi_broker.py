"""`dev up --brokers 3` forms a three-voter KRaft quorum that replicates topics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streaming.config import KafkaSettings
from streaming.devstack import DevStack, StackState
from streaming.devstack.procs import pid_alive
from streaming.errors import TopicError
from streaming.testing import StackEndpoints, eventually
from streaming.transport import TopicSpec
from streaming.transport.kafka import KafkaTransport


@pytest.fixture
def three_brokers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, streaming_stack: StackEndpoints
) -> Iterator[StackState]:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("DATABASE_URL", streaming_stack.database_url)  # reuse the session's
    stack = DevStack(tmp_path / "stack")
    state = stack.up(brokers=3, registry=False)
    assert state.kafka is not None
    pids = state.kafka.pids
    yield state
    assert stack.down() == ["kafka"], "down must leave the external database alone"
    assert not any(pid_alive(pid) for pid in pids)


async def test_three_node_quorum_replicates(three_brokers: StackState) -> None:
    kafka = three_brokers.kafka
    assert kafka is not None
    assert len(kafka.pids) == 3
    admin = KafkaTransport(KafkaSettings(bootstrap_servers=kafka.address)).admin()
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        assert len(cluster.brokers) == 3
        # A brand-new cluster has no __consumer_offsets yet: the first group lookup waits
        # for its coordinator instead of failing.
        assert await admin.group_offsets("never-used") == {}
        await admin.create_topics([TopicSpec("replicated", 3, 3, {"min.insync.replicas": "2"})])

        # Metadata reaches the other brokers a moment after the controller created it.
        async def visible_config() -> dict[str, str] | None:
            try:
                assert await admin.partition_count("replicated") == 3
                return dict(await admin.describe_topic_config("replicated"))
            except TopicError:
                return None

        config = await eventually(
            visible_config, timeout_s=30, what="the topic on every broker", interval_s=0.1
        )
        assert config["min.insync.replicas"] == "2"
    finally:
        await admin.stop()
