"""The pure half of ``streaming top``: lag, rates, failure-topic depth and rebalances."""

from __future__ import annotations

from streaming.core.topics import dlq_topic, parking_topic, retry_topic
from streaming.ops.model import KafkaSample, RebalanceWatch, kafka_view, rate
from streaming.transport.base import GroupInfo, TopicPartition

T, G = "orders", "billing"
RETRY1, RETRY2, DLQ = retry_topic(T, G, 1), retry_topic(T, G, 2), dlq_topic(T, G)


def tp(topic: str, partition: int = 0) -> TopicPartition:
    return TopicPartition(topic, partition)


def sample(
    at_s: float,
    end: dict[TopicPartition, int],
    committed: dict[TopicPartition, int],
    begin: dict[TopicPartition, int] | None = None,
    state: str = "Stable",
    members: tuple[str, ...] = ("m1",),
) -> KafkaSample:
    return KafkaSample(
        at_s=at_s,
        begin=begin or {},
        end=end,
        committed={G: committed},
        groups={G: GroupInfo(G, state, len(members), members)},
        topics=frozenset(t.topic for t in end),
    )


def test_rate_is_null_without_a_previous_offset_or_when_it_went_back() -> None:
    assert rate(30, 10, 2.0) == 10.0
    assert rate(30, None, 2.0) is None
    assert rate(10, 30, 2.0) is None  # a reset or a re-created topic, not a negative rate
    assert rate(30, 10, 0.0) is None


def test_lag_per_partition_counts_from_the_log_start_where_nothing_was_committed() -> None:
    cur = sample(1.0, {tp(T, 0): 150, tp(T, 1): 40}, {tp(T, 0): 50}, begin={tp(T, 1): 10})
    (group,) = kafka_view(cur, None, {})["groups"]
    (row,) = group["topics"]
    assert row["partitions"] == [
        {"partition": 0, "committed": 50, "end": 150, "lag": 100},
        {"partition": 1, "committed": None, "end": 40, "lag": 30},
    ]
    assert group["lag"] == row["lag"] == 130
    assert row["consume_rate"] is None and group["consume_rate"] is None  # one look only


def test_rates_come_from_offset_deltas_between_two_looks() -> None:
    prev = sample(10.0, {tp(T): 100}, {tp(T): 40})
    cur = sample(12.0, {tp(T): 160}, {tp(T): 50})
    view = kafka_view(cur, prev, {})
    assert view["topics"] == [
        {"topic": T, "partitions": 1, "end_offset": 160, "produce_rate": 30.0}
    ]
    assert view["groups"][0]["topics"][0]["consume_rate"] == 5.0


def test_retry_depth_is_the_groups_lag_and_dlq_depth_the_records_held() -> None:
    end = {tp(T): 10, tp(RETRY1): 7, tp(RETRY2): 2, tp(DLQ): 9, tp(parking_topic(T, G)): 1}
    committed = {tp(T): 10, tp(RETRY1): 4}  # the group reads its own retry topics
    cur = sample(1.0, end, committed, begin={tp(DLQ): 3})
    view = kafka_view(cur, None, {})
    (row,) = view["groups"][0]["topics"]
    assert row["topic"] == T  # its retry topic is not listed as a topic of its own
    assert row["retry"] == [{"topic": RETRY1, "depth": 3}, {"topic": RETRY2, "depth": 2}]
    assert row["dlq"] == {"topic": DLQ, "depth": 6}
    assert [t["topic"] for t in view["topics"]] == [T]  # failure topics sit under the group


def test_a_rebalance_is_counted_once_per_episode() -> None:
    watch = RebalanceWatch()
    looks = [
        GroupInfo(G, "Stable", 1, ("a",)),
        GroupInfo(G, "Stable", 1, ("a",)),  # nothing happened
        GroupInfo(G, "PreparingRebalance", 1, ("a",)),  # a member joins: 1
        GroupInfo(G, "Stable", 2, ("a", "b")),  # the same rebalance, settled
        GroupInfo(G, "Stable", 1, ("b",)),  # one left between looks: 2
        GroupInfo(G, "Empty", 0, ()),  # the last left: 3
    ]
    seen = []
    for info in looks:
        watch.observe([info])
        seen.append(watch.counts[G])
    assert seen == [0, 0, 1, 1, 2, 3]
