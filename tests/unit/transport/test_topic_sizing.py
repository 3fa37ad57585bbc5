"""Topics created without a replication factor are sized for the cluster they land on."""

from __future__ import annotations

import pytest

from streaming.transport.base import TopicSpec
from streaming.transport.memory import InMemoryTransport


@pytest.mark.parametrize(
    ("brokers", "replicas", "in_sync"), [(1, 1, "1"), (2, 2, "2"), (3, 3, "2"), (5, 3, "2")]
)
def test_unsized_topics_get_min_3_brokers_replicas_and_min_2_in_sync(
    brokers: int, replicas: int, in_sync: str
) -> None:
    sized = TopicSpec("t", 3, config={"cleanup.policy": "compact"}).sized_for(brokers)
    assert sized.replication_factor == replicas
    assert sized.config == {"cleanup.policy": "compact", "min.insync.replicas": in_sync}


def test_a_setting_or_an_explicit_choice_wins_over_the_cluster_size() -> None:
    assert TopicSpec("t").sized_for(3, replication=2).replication_factor == 2
    assert TopicSpec("t").sized_for(3, replication=2).config["min.insync.replicas"] == "2"
    assert TopicSpec("t", replication_factor=1).sized_for(3, replication=2).config == {
        "min.insync.replicas": "1"
    }
    assert TopicSpec("t").sized_for(3, min_insync=1).config["min.insync.replicas"] == "1"
    explicit = TopicSpec("t", config={"min.insync.replicas": "3"}).sized_for(3)
    assert explicit.config["min.insync.replicas"] == "3"


async def test_the_in_memory_cluster_sizes_topics_like_kafka() -> None:
    admin = InMemoryTransport(brokers=3).admin()
    await admin.start()
    await admin.create_topics([TopicSpec("internal", 1, config={"cleanup.policy": "compact"})])
    assert (await admin.describe_topic_config("internal"))["min.insync.replicas"] == "2"
    await admin.stop()
