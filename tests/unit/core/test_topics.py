"""Topic naming and the one config per compacted internal topic."""

from __future__ import annotations

import pytest

from connectors.audit_sink.checkpoints import ensure_checkpoint_topic
from streaming.clients.topics import TopicDefaults, plan_topics
from streaming.core.topics import (
    AUDIT_CHECKPOINTS_CONFIG,
    AUDIT_CHECKPOINTS_TOPIC,
    AUDIT_EVENTS_TOPIC,
    CHANGELOG_CONFIG,
    COMMAND_TOPICS,
    COMPACTED,
    INTERNAL_TOPIC_CONFIGS,
    INTERNAL_TOPICS,
    OFFSET_SNAPSHOTS_CONFIG,
    OFFSET_SNAPSHOTS_TOPIC,
    RetryTopicNameError,
    changelog_topic,
    dlq_topic,
    parking_topic,
    retry_topic,
    revocations_config,
)
from streaming.errors import TopicError
from streaming.replay.snapshots import SnapshotStore
from streaming.testing import InMemoryTransport


def test_failure_topics_belong_to_a_topic_and_a_group() -> None:
    assert retry_topic("orders", "risk", 2) == "orders.risk.retry.2"
    assert dlq_topic("orders", "risk") == "orders.risk.dlq"
    assert parking_topic("orders", "risk") == "orders.risk.parking"
    assert changelog_topic("positions") == "positions.changelog"


@pytest.mark.parametrize(
    "name",
    [
        lambda: dlq_topic("orders", "risk team"),
        lambda: retry_topic("orders", "g/1", 1),
        lambda: parking_topic("o" * 240, "risk"),
    ],
)
def test_an_illegal_failure_topic_name_is_a_typed_topic_error(name: object) -> None:
    with pytest.raises(RetryTopicNameError, match="rename the topic or consumer group") as info:
        name()  # type: ignore[operator]
    assert isinstance(info.value, TopicError)


def test_retry_levels_count_from_one() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        retry_topic("orders", "risk", 0)


def test_every_compacted_config_compacts_and_is_read_only() -> None:
    configs = [COMPACTED, CHANGELOG_CONFIG, OFFSET_SNAPSHOTS_CONFIG, AUDIT_CHECKPOINTS_CONFIG]
    for config in configs:
        assert config["cleanup.policy"] == "compact"
        with pytest.raises(TypeError):
            config["cleanup.policy"] = "delete"  # type: ignore[index]
    assert set(INTERNAL_TOPIC_CONFIGS) == set(INTERNAL_TOPICS)


def test_planned_internal_topics_get_the_same_config_their_owners_create() -> None:
    specs = {
        s.name: s
        for s in plan_topics([], defaults=TopicDefaults(min_insync_replicas=2), internal=True)
    }
    assert set(specs) == set(COMMAND_TOPICS)  # every topic the commands need
    assert specs[AUDIT_EVENTS_TOPIC].config["retention.ms"] == str(7 * 86_400_000)
    for name in INTERNAL_TOPICS:
        assert specs[name].partitions == 1
        assert specs[name].config == {**INTERNAL_TOPIC_CONFIGS[name], "min.insync.replicas": "2"}


async def test_the_snapshot_store_and_the_audit_sink_create_their_topics_with_that_config() -> None:
    transport = InMemoryTransport()
    await SnapshotStore(transport).ensure_topic()
    admin = transport.admin()
    await admin.start()
    try:
        await ensure_checkpoint_topic(admin, AUDIT_CHECKPOINTS_TOPIC)
        for name in (OFFSET_SNAPSHOTS_TOPIC, AUDIT_CHECKPOINTS_TOPIC):
            found = await admin.describe_topic_config(name)
            assert found.items() >= INTERNAL_TOPIC_CONFIGS[name].items()
    finally:
        await admin.stop()


def test_revocations_are_compacted_and_expire_with_their_tokens() -> None:
    config = revocations_config(retention_ms=691_200_000)
    assert dict(config) == {"cleanup.policy": "compact,delete", "retention.ms": "691200000"}
