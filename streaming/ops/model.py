"""The Kafka part of ``streaming top``, computed from two samples: pure, no I/O.

A :class:`KafkaSample` is what one look at the cluster returns (log starts and ends,
committed offsets, group descriptions); :func:`kafka_view` turns the newest sample and
the one before it into the JSON-ready document (rates are offset deltas per second
between the two, ``None`` without an earlier sample or when an offset went back, e.g.
after a reset or a re-created topic). :class:`RebalanceWatch` counts rebalances across
looks, because Kafka's DescribeGroups answer carries no generation id: a rebalance is a
group entering PreparingRebalance/CompletingRebalance, or its member set changing
between two looks while it was not already rebalancing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streaming.core.topics import dlq_topic, parking_topic, retry_topic
from streaming.transport.base import GroupInfo, TopicPartition

REBALANCING = frozenset({"PreparingRebalance", "CompletingRebalance"})
MAX_RETRY_LEVELS = 32
"""Retry topics are looked for at levels 1..this (policies use a handful)."""


@dataclass(frozen=True, slots=True)
class KafkaSample:
    """One look at the cluster, ``at_s`` on a monotonic clock."""

    at_s: float
    begin: Mapping[TopicPartition, int]
    end: Mapping[TopicPartition, int]
    committed: Mapping[str, Mapping[TopicPartition, int]]
    groups: Mapping[str, GroupInfo]
    topics: frozenset[str] = field(default_factory=frozenset)
    """Every topic the look selected (main and failure topics)."""


def rate(now: int, before: int | None, seconds: float | None) -> float | None:
    """Records per second between two offsets; ``None`` when unknown or gone back."""
    if before is None or seconds is None or seconds <= 0 or now < before:
        return None
    return round((now - before) / seconds, 2)


class RebalanceWatch:
    """Rebalances per group counted across looks (see the module docstring)."""

    def __init__(self) -> None:
        self._last: dict[str, GroupInfo] = {}
        self.counts: dict[str, int] = {}

    def observe(self, groups: Iterable[GroupInfo]) -> None:
        for info in groups:
            before = self._last.get(info.group_id)
            self.counts.setdefault(info.group_id, 0)
            if before is not None and before.state not in REBALANCING:
                moved = info.member_ids != before.member_ids
                if info.state in REBALANCING or moved:
                    self.counts[info.group_id] += 1
            self._last[info.group_id] = info


def failure_topics(
    topic: str, group: str, existing: frozenset[str]
) -> tuple[list[str], str | None]:
    """The retry topics (by level) and the DLQ of ``group`` on ``topic`` that exist."""
    retries = []
    for level in range(1, MAX_RETRY_LEVELS + 1):
        name = retry_topic(topic, group, level)
        if name not in existing:
            break
        retries.append(name)
    dlq = dlq_topic(topic, group)
    return retries, (dlq if dlq in existing else None)


def partitions_of(sample: KafkaSample, topic: str) -> list[TopicPartition]:
    return sorted(tp for tp in sample.end if tp.topic == topic)


def group_topics(sample: KafkaSample, group: str) -> list[str]:
    """The main topics ``group`` committed on (its own retry topics excluded)."""
    topics = {tp.topic for tp in sample.committed.get(group, {})}
    owned = set()
    for topic in topics:
        retries, _ = failure_topics(topic, group, sample.topics)
        owned.update(retries)
    return sorted(t for t in topics - owned if any(tp.topic == t for tp in sample.end))


def _position(sample: KafkaSample, group: str, tp: TopicPartition) -> int | None:
    return sample.committed.get(group, {}).get(tp)


def _lag(sample: KafkaSample, group: str, tp: TopicPartition) -> int:
    """Records the group has yet to read; from the log start where it never committed
    (where ``auto.offset.reset=earliest`` begins)."""
    position = _position(sample, group, tp)
    start = position if position is not None else sample.begin.get(tp, 0)
    return max(sample.end[tp] - start, 0)


def _group_topic(
    cur: KafkaSample, prev: KafkaSample | None, group: str, topic: str, seconds: float | None
) -> dict[str, Any]:
    parts = []
    for tp in partitions_of(cur, topic):
        parts.append(
            {
                "partition": tp.partition,
                "committed": _position(cur, group, tp),
                "end": cur.end[tp],
                "lag": _lag(cur, group, tp),
            }
        )
    retries, dlq = failure_topics(topic, group, cur.topics)
    return {
        "topic": topic,
        "lag": sum(p["lag"] for p in parts),
        "consume_rate": _consumed_rate(cur, prev, group, topic, seconds),
        "partitions": parts,
        "retry": [
            {"topic": name, "depth": sum(_lag(cur, group, tp) for tp in partitions_of(cur, name))}
            for name in retries
        ],
        "dlq": (
            None
            if dlq is None
            else {
                "topic": dlq,
                "depth": sum(
                    max(cur.end[tp] - cur.begin.get(tp, 0), 0) for tp in partitions_of(cur, dlq)
                ),
            }
        ),
    }


def _consumed_rate(
    cur: KafkaSample, prev: KafkaSample | None, group: str, topic: str, seconds: float | None
) -> float | None:
    if prev is None:
        return None
    now = {tp: o for tp, o in cur.committed.get(group, {}).items() if tp.topic == topic}
    before = {tp: o for tp, o in prev.committed.get(group, {}).items() if tp.topic == topic}
    common = now.keys() & before.keys()
    if not common and now:
        return None
    return rate(sum(now[tp] for tp in common), sum(before[tp] for tp in common), seconds)


def _sum_rates(rates: Iterable[float | None]) -> float | None:
    values = list(rates)
    if not values or any(r is None for r in values):
        return None
    return round(sum(r for r in values if r is not None), 2)


def kafka_view(
    cur: KafkaSample, prev: KafkaSample | None, rebalances: Mapping[str, int]
) -> dict[str, Any]:
    """The ``kafka`` part of the ``top`` document (shape: :mod:`streaming.ops.top`)."""
    seconds = cur.at_s - prev.at_s if prev is not None else None
    groups = []
    owned: set[str] = set()
    for group in sorted(cur.groups):
        info = cur.groups[group]
        rows = [_group_topic(cur, prev, group, t, seconds) for t in group_topics(cur, group)]
        for row in rows:
            owned.update(r["topic"] for r in row["retry"])
            owned.update([dlq_topic(row["topic"], group), parking_topic(row["topic"], group)])
        groups.append(
            {
                "group": group,
                "state": info.state,
                "members": info.members,
                "rebalances": rebalances.get(group, 0),
                "lag": sum(r["lag"] for r in rows),
                "consume_rate": _sum_rates(r["consume_rate"] for r in rows),
                "topics": rows,
            }
        )
    topics = []
    for topic in sorted({tp.topic for tp in cur.end} - owned):
        tps = partitions_of(cur, topic)
        end = sum(cur.end[tp] for tp in tps)
        before = None
        if prev is not None and all(tp in prev.end for tp in tps):
            before = sum(prev.end[tp] for tp in tps)
        topics.append(
            {
                "topic": topic,
                "partitions": len(tps),
                "end_offset": end,
                "produce_rate": rate(end, before, seconds),
            }
        )
    return {"topics": topics, "groups": groups}


__all__ = [
    "MAX_RETRY_LEVELS",
    "REBALANCING",
    "KafkaSample",
    "RebalanceWatch",
    "failure_topics",
    "group_topics",
    "kafka_view",
    "partitions_of",
    "rate",
]
