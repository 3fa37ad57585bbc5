"""Topic names and the configs of the compacted topics the package creates.

Naming (DESIGN.md, "Contracts"): failure topics belong to a consumer group, because a
failure belongs to a handler: ``<topic>.<group>.retry.<n>``, ``<topic>.<group>.dlq`` and
``<topic>.<group>.parking``; a state store's changelog is ``<name>.changelog``.

Internal topics are compacted. Each has ONE config here, whichever component happens to
create it first (``streaming topics create --internal``, the snapshot store, the audit
sink, the registry), so the topic is the same however it came to exist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from streaming.errors import TopicError

_LEGAL = re.compile(r"^[A-Za-z0-9._-]+$")
MAX_TOPIC_LENGTH = 249

SCHEMAS_TOPIC = "_schemas"
OFFSET_SNAPSHOTS_TOPIC = "_streaming.offset-snapshots"
AUDIT_CHECKPOINTS_TOPIC = "_streaming.audit-checkpoints"
REVOCATIONS_TOPIC = "_streaming.revocations"
AUDIT_EVENTS_TOPIC = "audit.events"
"""Where audit events are published and the audit sink reads (``AUDIT_TOPICS``)."""
INTERNAL_TOPICS = (OFFSET_SNAPSHOTS_TOPIC, AUDIT_CHECKPOINTS_TOPIC)
"""What ``streaming topics create --internal`` provisions (``_schemas`` belongs to the
registry deployable; the revocations topic to the token verifiers, which size its retention)."""


def _compacted(extra: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """A read-only ``cleanup.policy=compact`` config plus ``extra``."""
    return MappingProxyType({"cleanup.policy": "compact", **(extra or {})})


COMPACTED = _compacted()
"""Plain compaction: the ``_schemas`` topic and tables that need nothing more."""
CHANGELOG_CONFIG = _compacted({"min.cleanable.dirty.ratio": "0.1"})
"""A state store's changelog: cleaned early, it is replayed on every start."""
OFFSET_SNAPSHOTS_CONFIG = _compacted({"min.cleanable.dirty.ratio": "0.1", "segment.ms": "3600000"})
"""Small and rewritten often: hourly segments so superseded rows are cleaned."""
AUDIT_CHECKPOINTS_CONFIG = _compacted({"min.compaction.lag.ms": "60000"})
"""A checkpoint stays readable for a minute before a newer one may replace it."""


def revocations_config(retention_ms: int) -> Mapping[str, str]:
    """Compacted AND deleted: a revocation is useless once its token has expired."""
    return MappingProxyType({"cleanup.policy": "compact,delete", "retention.ms": str(retention_ms)})


def audit_events_config(retention_days: int) -> Mapping[str, str]:
    """An audit topic: deleted by age only, after ``LOG_AUDIT_RETENTION_DAYS`` (never
    compacted, never by size), so Kafka keeps every event as long as the regulation asks."""
    return MappingProxyType(
        {
            "cleanup.policy": "delete",
            "retention.ms": str(retention_days * 86_400_000),
            "retention.bytes": "-1",
        }
    )


INTERNAL_TOPIC_CONFIGS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        OFFSET_SNAPSHOTS_TOPIC: OFFSET_SNAPSHOTS_CONFIG,
        AUDIT_CHECKPOINTS_TOPIC: AUDIT_CHECKPOINTS_CONFIG,
    }
)


class RetryTopicNameError(TopicError):
    """A retry/DLQ topic name would not be a legal Kafka topic name."""


def _checked(name: str) -> str:
    if len(name) > MAX_TOPIC_LENGTH or not _LEGAL.match(name):
        raise RetryTopicNameError(
            f"{name!r} is not a legal Kafka topic name (use letters, digits, '.', '_', '-' "
            f"and at most {MAX_TOPIC_LENGTH} characters); rename the topic or consumer group"
        )
    return name


def retry_topic(topic: str, group: str, level: int) -> str:
    """``<topic>.<group>.retry.<level>``; level 1 holds attempt 2."""
    if level < 1:
        raise ValueError(f"retry level must be >= 1, got {level}")
    return _checked(f"{topic}.{group}.retry.{level}")


def dlq_topic(topic: str, group: str) -> str:
    """``<topic>.<group>.dlq``: records that exhausted their attempts or failed fatally."""
    return _checked(f"{topic}.{group}.dlq")


def parking_topic(topic: str, group: str) -> str:
    """``<topic>.<group>.parking``: records a redrive gave up on, kept for humans."""
    return _checked(f"{topic}.{group}.parking")


def is_internal_topic(name: str) -> bool:
    """Kafka's and ours (``__consumer_offsets``, ``_schemas``, ``_streaming.*``): not data."""
    return name.startswith("_")


def changelog_topic(name: str) -> str:
    """``<name>.changelog``: the compacted topic a state store ``name`` is rebuilt from."""
    return f"{name}.changelog"


__all__ = [
    "AUDIT_CHECKPOINTS_CONFIG",
    "AUDIT_CHECKPOINTS_TOPIC",
    "AUDIT_EVENTS_TOPIC",
    "CHANGELOG_CONFIG",
    "COMPACTED",
    "INTERNAL_TOPICS",
    "INTERNAL_TOPIC_CONFIGS",
    "MAX_TOPIC_LENGTH",
    "OFFSET_SNAPSHOTS_CONFIG",
    "OFFSET_SNAPSHOTS_TOPIC",
    "REVOCATIONS_TOPIC",
    "SCHEMAS_TOPIC",
    "RetryTopicNameError",
    "audit_events_config",
    "changelog_topic",
    "dlq_topic",
    "is_internal_topic",
    "parking_topic",
    "retry_topic",
    "revocations_config",
]
