"""Topic provisioning: main, retry and DLQ topics, and the compacted internal topics.

:func:`plan_topics` is pure (what should exist, with which partitions, replication
factor, ``min.insync.replicas`` and retention); :func:`ensure_topics` creates what is
missing through an :class:`~streaming.transport.base.AdminTransport` and reports what
already existed and any partition-count mismatch. Retry and DLQ topics always get the
source topic's partition count, so a record keeps its partition number when it is
re-produced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from streaming.clients.retry import RetryPolicy
from streaming.config import KafkaSettings
from streaming.core.topics import (
    AUDIT_CHECKPOINTS_TOPIC,
    AUDIT_EVENTS_TOPIC,
    COMPACTED,
    INTERNAL_TOPIC_CONFIGS,
    INTERNAL_TOPICS,
    OFFSET_SNAPSHOTS_TOPIC,
)
from streaming.errors import TopicError
from streaming.transport.base import AdminTransport, TopicSpec, TransportFactory

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class TopicDefaults:
    """Sizing and retention for the topics this package creates.

    Replication and ``min.insync.replicas`` left ``None`` are sized for the cluster when
    the topic is created (:meth:`~streaming.transport.base.TopicSpec.sized_for`):
    ``min(3, brokers)`` replicas, ``min(2, replicas)`` in sync.
    """

    partitions: int = 6
    replication_factor: int | None = None
    min_insync_replicas: int | None = None
    retention_ms: int = 7 * DAY_MS
    retry_retention_ms: int = 7 * DAY_MS
    dlq_retention_ms: int = 30 * DAY_MS

    @classmethod
    def from_settings(cls, settings: KafkaSettings, **overrides: int) -> TopicDefaults:
        """Partitions, replication and ``min.insync.replicas`` from ``KAFKA_*`` settings."""
        base = cls(
            partitions=settings.default_partitions,
            replication_factor=settings.default_replication_factor,
            min_insync_replicas=settings.min_insync_replicas,
        )
        return replace(base, **overrides)

    def _isr(self) -> dict[str, str]:
        if self.min_insync_replicas is None:
            return {}
        isr = min(self.min_insync_replicas, self.replication_factor or self.min_insync_replicas)
        return {"min.insync.replicas": str(isr)}

    def config(self, retention_ms: int) -> dict[str, str]:
        return {**self._isr(), "retention.ms": str(retention_ms)}

    def internal_config(self, name: str | None = None) -> dict[str, str]:
        """The one config of internal topic ``name`` (:mod:`streaming.core.topics`), or
        plain compaction for any other compacted topic, with ``min.insync.replicas``."""
        return {**INTERNAL_TOPIC_CONFIGS.get(name or "", COMPACTED), **self._isr()}


def failure_topic_specs(
    topic: str, group: str, policy: RetryPolicy, partitions: int, defaults: TopicDefaults
) -> list[TopicSpec]:
    """Retry topics and the DLQ of ``topic`` for ``group`` (same partition count)."""
    names = policy.topics(topic, group)
    *retries, dlq = names
    specs = [
        TopicSpec(
            n, partitions, defaults.replication_factor, defaults.config(defaults.retry_retention_ms)
        )
        for n in retries
    ]
    specs.append(
        TopicSpec(
            dlq, partitions, defaults.replication_factor, defaults.config(defaults.dlq_retention_ms)
        )
    )
    return specs


def plan_topics(
    topics: Iterable[str],
    *,
    groups: Sequence[str] = (),
    policy: RetryPolicy | None = None,
    defaults: TopicDefaults | None = None,
    partitions: Mapping[str, int] | None = None,
    internal: bool = False,
) -> list[TopicSpec]:
    """Every topic to create: each main topic, its retry/DLQ topics per group, and with
    ``internal`` every topic the product's own commands need (compacted internals and
    the audit events topic, :data:`~streaming.core.topics.COMMAND_TOPICS`)."""
    defaults = defaults or TopicDefaults()
    policy = policy or RetryPolicy()
    counts = dict(partitions or {})
    specs: list[TopicSpec] = []
    for topic in topics:
        count = counts.get(topic, defaults.partitions)
        specs.append(
            TopicSpec(
                topic, count, defaults.replication_factor, defaults.config(defaults.retention_ms)
            )
        )
        for group in groups:
            specs.extend(failure_topic_specs(topic, group, policy, count, defaults))
    if internal:
        specs.extend(
            TopicSpec(name, 1, defaults.replication_factor, defaults.internal_config(name))
            for name in INTERNAL_TOPICS
        )
        specs.append(
            TopicSpec(
                AUDIT_EVENTS_TOPIC,
                counts.get(AUDIT_EVENTS_TOPIC, defaults.partitions),
                defaults.replication_factor,
                defaults.config(defaults.retention_ms),
            )
        )
    return specs


async def topic_exists(transport: TransportFactory, name: str) -> bool:
    """Whether the cluster has topic ``name`` (one admin round trip; creates nothing)."""
    admin = transport.admin()
    await admin.start()
    try:
        return name in await admin.list_topics()
    finally:
        await admin.stop()


@dataclass(frozen=True, slots=True)
class EnsureResult:
    """What :func:`ensure_topics` did."""

    created: tuple[str, ...] = ()
    existing: tuple[str, ...] = ()
    mismatched: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """Existing topics whose partition count differs: name -> (wanted, actual)."""


async def ensure_topics(
    admin: AdminTransport, specs: Sequence[TopicSpec], *, strict: bool = False
) -> EnsureResult:
    """Create the missing topics of ``specs``; existing ones are left alone.

    With ``strict`` an existing topic whose partition count differs raises
    :class:`TopicError` (retry/DLQ topics must match their source).
    """
    present = await admin.list_topics()
    missing = [s for s in specs if s.name not in present]
    existing = [s for s in specs if s.name in present]
    mismatched: dict[str, tuple[int, int]] = {}
    for spec in existing:
        actual = await admin.partition_count(spec.name)
        if actual != spec.partitions:
            mismatched[spec.name] = (spec.partitions, actual)
    if strict and mismatched:
        detail = ", ".join(f"{n} wants {w} has {a}" for n, (w, a) in sorted(mismatched.items()))
        raise TopicError(
            f"partition counts differ: {detail}; retry/DLQ topics need their source's count "
            "(recreate them or add partitions)"
        )
    await admin.create_topics(missing)
    return EnsureResult(
        created=tuple(s.name for s in missing),
        existing=tuple(s.name for s in existing),
        mismatched=mismatched,
    )


async def ensure_failure_topics(
    admin: AdminTransport,
    topics: Iterable[str],
    group: str,
    policy: RetryPolicy,
    defaults: TopicDefaults | None = None,
) -> EnsureResult:
    """Create retry/DLQ topics for existing source ``topics`` with matching partitions."""
    defaults = defaults or TopicDefaults()
    specs: list[TopicSpec] = []
    for topic in topics:
        count = await admin.partition_count(topic)
        specs.extend(failure_topic_specs(topic, group, policy, count, defaults))
    return await ensure_topics(admin, specs)


__all__ = [
    "AUDIT_CHECKPOINTS_TOPIC",
    "INTERNAL_TOPICS",
    "OFFSET_SNAPSHOTS_TOPIC",
    "EnsureResult",
    "TopicDefaults",
    "ensure_failure_topics",
    "ensure_topics",
    "failure_topic_specs",
    "plan_topics",
    "topic_exists",
]
