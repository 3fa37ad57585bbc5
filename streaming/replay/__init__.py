"""Replay: offsets snapshots and resets, range replay, DLQ redrive, compacted state.

Everything works on the transport layer (bytes in, bytes out), so keys, headers and
values are preserved exactly whatever serializer wrote them. The pure cores are
:mod:`.plan` (reset planning, CSV, durations) and the decision functions of
:mod:`.redrive`; the rest does I/O through a :class:`~streaming.transport.TransportFactory`,
so every feature runs against real Kafka and the in-memory transport alike.
"""

from streaming.replay.audit import (
    AuditHook,
    ReplayAuditEvent,
    chain_hook,
    current_actor,
    log_replay_action,
)
from streaming.replay.errors import (
    ConcurrentRunFencedError,
    GroupActiveError,
    IncompatibleRangeError,
    ReplayError,
    ResetPlanError,
    SnapshotNotFoundError,
)
from streaming.replay.offsets import OffsetManager
from streaming.replay.plan import (
    PartitionOffsets,
    PartitionPlan,
    ResetKind,
    ResetPlan,
    ResetStrategy,
    format_offsets_csv,
    parse_duration,
    parse_offsets_csv,
    parse_topic_selector,
    plan_reset,
)
from streaming.replay.range import (
    H_REPLAY_ID,
    H_REPLAY_ORIGIN,
    Bound,
    RangeReplayer,
    ReplayProgress,
    ReplayResult,
)
from streaming.replay.ratelimit import RateLimiter
from streaming.replay.redrive import (
    DEFAULT_MAX_REDRIVES,
    H_REDRIVE_COUNT,
    H_REDRIVE_ID,
    Decision,
    DlqRedriver,
    RedriveFilter,
    RedriveLedger,
    RedriveResult,
)
from streaming.replay.snapshots import (
    SNAPSHOTS_TOPIC,
    OffsetSnapshot,
    SnapshotPartition,
    SnapshotStore,
)
from streaming.replay.state_store import StateStore, changelog_topic
from streaming.replay.table import CompactedTable

__all__ = [
    "DEFAULT_MAX_REDRIVES",
    "H_REDRIVE_COUNT",
    "H_REDRIVE_ID",
    "H_REPLAY_ID",
    "H_REPLAY_ORIGIN",
    "SNAPSHOTS_TOPIC",
    "AuditHook",
    "Bound",
    "CompactedTable",
    "ConcurrentRunFencedError",
    "Decision",
    "DlqRedriver",
    "GroupActiveError",
    "IncompatibleRangeError",
    "OffsetManager",
    "OffsetSnapshot",
    "PartitionOffsets",
    "PartitionPlan",
    "RangeReplayer",
    "RateLimiter",
    "RedriveFilter",
    "RedriveLedger",
    "RedriveResult",
    "ReplayAuditEvent",
    "ReplayError",
    "ReplayProgress",
    "ReplayResult",
    "ResetKind",
    "ResetPlan",
    "ResetPlanError",
    "ResetStrategy",
    "SnapshotNotFoundError",
    "SnapshotPartition",
    "SnapshotStore",
    "StateStore",
    "chain_hook",
    "changelog_topic",
    "current_actor",
    "format_offsets_csv",
    "log_replay_action",
    "parse_duration",
    "parse_offsets_csv",
    "parse_topic_selector",
    "plan_reset",
]
