"""Offset-reset planning, pure: the strategies of ``kafka-consumer-groups.sh --reset-offsets``.

Nothing here does I/O. The caller (:mod:`streaming.replay.offsets`) gathers each
partition's beginning, end and committed offsets, plus ``offsets_for_times`` answers for
the time-based strategies, and :func:`plan_reset` turns them into a :class:`ResetPlan`.
Like Kafka, targets outside ``[beginning, end]`` are clamped into it, and a time past the
last record lands at the end.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from streaming.replay.errors import ResetPlanError
from streaming.transport.base import TopicPartition

_DURATION = TypeAdapter(timedelta)
_SELECTOR = re.compile(r"^(?P<topic>[A-Za-z0-9._-]+)(?::(?P<parts>\d+(?:,\d+)*))?$")


class ResetKind(enum.StrEnum):
    TO_DATETIME = "to-datetime"
    BY_DURATION = "by-duration"
    SHIFT_BY = "shift-by"
    TO_OFFSET = "to-offset"
    TO_EARLIEST = "to-earliest"
    TO_LATEST = "to-latest"
    FROM_SNAPSHOT = "from-snapshot"
    FROM_FILE = "from-file"


def parse_datetime(text: str) -> datetime:
    """ISO-8601 date-time; without a zone it is taken as UTC (servers rarely share a zone)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ResetPlanError(
            f"--to-datetime {text!r} is not ISO-8601; use e.g. 2024-05-01T12:00:00Z"
        ) from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_duration(text: str) -> timedelta:
    """ISO-8601 duration such as ``PT1H``, ``P1DT30M`` or ``PT0.5S`` (positive)."""
    try:
        if not text.strip().upper().startswith("P"):
            raise ValueError("ISO-8601 durations start with P")
        value = _DURATION.validate_python(text.strip())
    except (ValidationError, ValueError) as exc:
        raise ResetPlanError(
            f"--by-duration {text!r} is not an ISO-8601 duration; use e.g. PT1H or P1DT12H"
        ) from exc
    if value <= timedelta(0):
        raise ResetPlanError(f"--by-duration {text!r} must be positive")
    return value


def to_epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class ResetStrategy:
    """One reset strategy and its argument; build it with the class methods."""

    kind: ResetKind
    at: datetime | None = None
    duration: timedelta | None = None
    amount: int | None = None
    source: str | None = None
    offsets: Mapping[TopicPartition, int] = field(default_factory=dict)

    @classmethod
    def to_datetime(cls, at: datetime | str) -> ResetStrategy:
        when = parse_datetime(at) if isinstance(at, str) else at
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return cls(ResetKind.TO_DATETIME, at=when)

    @classmethod
    def by_duration(cls, duration: timedelta | str) -> ResetStrategy:
        value = parse_duration(duration) if isinstance(duration, str) else duration
        return cls(ResetKind.BY_DURATION, duration=value)

    @classmethod
    def shift_by(cls, amount: int) -> ResetStrategy:
        return cls(ResetKind.SHIFT_BY, amount=amount)

    @classmethod
    def to_offset(cls, offset: int) -> ResetStrategy:
        if offset < 0:
            raise ResetPlanError(f"--to-offset must be >= 0, got {offset}")
        return cls(ResetKind.TO_OFFSET, amount=offset)

    @classmethod
    def to_earliest(cls) -> ResetStrategy:
        return cls(ResetKind.TO_EARLIEST)

    @classmethod
    def to_latest(cls) -> ResetStrategy:
        return cls(ResetKind.TO_LATEST)

    @classmethod
    def from_snapshot(cls, name: str, offsets: Mapping[TopicPartition, int]) -> ResetStrategy:
        return cls(ResetKind.FROM_SNAPSHOT, source=name, offsets=dict(offsets))

    @classmethod
    def from_csv(cls, text: str, *, group: str | None = None, source: str = "-") -> ResetStrategy:
        return cls(ResetKind.FROM_FILE, source=source, offsets=parse_offsets_csv(text, group=group))

    @property
    def explicit(self) -> bool:
        """Whether the strategy names its own partitions (snapshot, file)."""
        return self.kind in (ResetKind.FROM_SNAPSHOT, ResetKind.FROM_FILE)

    def lookup_time_ms(self, now: datetime) -> int | None:
        """The epoch ms to ask ``offsets_for_times`` about, for the time-based strategies."""
        if self.kind is ResetKind.TO_DATETIME and self.at is not None:
            return to_epoch_ms(self.at)
        if self.kind is ResetKind.BY_DURATION and self.duration is not None:
            return to_epoch_ms(now - self.duration)
        return None

    def describe(self) -> str:
        arg: object = {
            ResetKind.TO_DATETIME: self.at.isoformat() if self.at else None,
            ResetKind.BY_DURATION: self.duration,
            ResetKind.SHIFT_BY: self.amount,
            ResetKind.TO_OFFSET: self.amount,
            ResetKind.FROM_SNAPSHOT: self.source,
            ResetKind.FROM_FILE: self.source,
        }.get(self.kind)
        return f"--{self.kind.value}" + (f" {arg}" if arg is not None else "")


@dataclass(frozen=True, slots=True)
class PartitionOffsets:
    """What the planner needs to know of one partition."""

    beginning: int
    end: int
    current: int | None


@dataclass(frozen=True, slots=True)
class PartitionPlan:
    tp: TopicPartition
    current: int | None
    target: int
    beginning: int
    end: int
    note: str = ""

    @property
    def re_read(self) -> int | None:
        """Records the group reads again (negative: records it skips); None if never committed."""
        return None if self.current is None else self.current - self.target

    @property
    def lag_after(self) -> int:
        return self.end - self.target

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.tp.topic,
            "partition": self.tp.partition,
            "current": self.current,
            "target": self.target,
            "re_read": self.re_read,
            "lag_after": self.lag_after,
            "beginning": self.beginning,
            "end": self.end,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class ResetPlan:
    """Where each partition of the group will be after the reset."""

    group: str
    strategy: str
    partitions: tuple[PartitionPlan, ...]

    @property
    def offsets(self) -> dict[TopicPartition, int]:
        return {p.tp: p.target for p in self.partitions}

    @property
    def changes(self) -> dict[TopicPartition, int]:
        """Only the partitions whose committed offset moves."""
        return {p.tp: p.target for p in self.partitions if p.current != p.target}

    @property
    def total_re_read(self) -> int:
        return sum(p.re_read or 0 for p in self.partitions)

    def to_csv(self) -> str:
        return format_offsets_csv(self.offsets)

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "strategy": self.strategy,
            "total_re_read": self.total_re_read,
            "partitions": [p.to_dict() for p in self.partitions],
        }


def _clamp(value: int, low: int, high: int) -> tuple[int, str]:
    if value < low:
        return low, f"clamped up to log start {low}"
    if value > high:
        return high, f"clamped down to log end {high}"
    return value, ""


def _target(
    strategy: ResetStrategy,
    tp: TopicPartition,
    state: PartitionOffsets,
    time_offsets: Mapping[TopicPartition, int | None],
) -> tuple[int, str]:
    kind = strategy.kind
    if kind is ResetKind.TO_EARLIEST:
        return state.beginning, ""
    if kind is ResetKind.TO_LATEST:
        return state.end, ""
    if kind in (ResetKind.TO_DATETIME, ResetKind.BY_DURATION):
        if tp not in time_offsets:
            raise ResetPlanError(f"{tp}: no offsets_for_times answer was gathered")
        found = time_offsets[tp]
        if found is None:
            return state.end, "no record at or after that time: log end"
        return _clamp(found, state.beginning, state.end)
    if kind is ResetKind.SHIFT_BY:
        if state.current is None:
            raise ResetPlanError(
                f"cannot shift {tp}: the group has no committed offset there; "
                "use --to-earliest, --to-datetime or --to-offset instead"
            )
        return _clamp(state.current + (strategy.amount or 0), state.beginning, state.end)
    if kind is ResetKind.TO_OFFSET:
        return _clamp(strategy.amount or 0, state.beginning, state.end)
    return _clamp(strategy.offsets[tp], state.beginning, state.end)


def plan_reset(
    group: str,
    strategy: ResetStrategy,
    state: Mapping[TopicPartition, PartitionOffsets],
    *,
    time_offsets: Mapping[TopicPartition, int | None] | None = None,
) -> ResetPlan:
    """Plan a reset of ``group`` over the partitions in ``state``.

    For snapshot and file strategies only the partitions they name are planned, and each
    must be in ``state``; for the others every partition in ``state`` is.
    """
    if strategy.explicit:
        missing = sorted(set(strategy.offsets) - set(state))
        if missing:
            raise ResetPlanError(
                "offsets name partitions that do not exist: " + ", ".join(map(str, missing))
            )
        chosen = sorted(tp for tp in strategy.offsets if tp in state)
    else:
        chosen = sorted(state)
    if not chosen:
        raise ResetPlanError(f"nothing to reset for group {group!r}: no partitions selected")
    plans = []
    for tp in chosen:
        part = state[tp]
        target, note = _target(strategy, tp, part, time_offsets or {})
        plans.append(PartitionPlan(tp, part.current, target, part.beginning, part.end, note))
    return ResetPlan(group=group, strategy=strategy.describe(), partitions=tuple(plans))


# --------------------------------------------------------------------------- CSV and selectors


def format_offsets_csv(offsets: Mapping[TopicPartition, int]) -> str:
    """``topic,partition,offset`` lines, as ``kafka-consumer-groups.sh --export`` writes."""
    return "".join(f"{tp.topic},{tp.partition},{off}\n" for tp, off in sorted(offsets.items()))


def parse_offsets_csv(text: str, *, group: str | None = None) -> dict[TopicPartition, int]:
    """Read ``topic,partition,offset`` lines (or Kafka's multi-group ``group,topic,...``).

    With four columns only the lines of ``group`` are kept (all if ``group`` is None).
    """
    offsets: dict[TopicPartition, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) == 4:
            if group is not None and cells[0] != group:
                continue
            cells = cells[1:]
        if len(cells) != 3:
            raise ResetPlanError(
                f"line {number}: expected 'topic,partition,offset', got {raw.strip()!r}"
            )
        topic, partition, offset = cells
        if not partition.isdigit() or not offset.lstrip("-").isdigit() or int(offset) < 0:
            raise ResetPlanError(
                f"line {number}: partition and offset must be non-negative integers: {line!r}"
            )
        tp = TopicPartition(topic, int(partition))
        if tp in offsets:
            raise ResetPlanError(f"line {number}: {tp} appears twice")
        offsets[tp] = int(offset)
    if not offsets:
        raise ResetPlanError("the offsets file has no 'topic,partition,offset' lines")
    return offsets


def parse_topic_selector(text: str) -> tuple[str, frozenset[int] | None]:
    """``orders`` (all partitions) or ``orders:0,2`` (those partitions), as Kafka's tool."""
    match = _SELECTOR.match(text.strip())
    if match is None:
        raise ResetPlanError(f"--topic {text!r}: expected TOPIC or TOPIC:P[,P...]")
    parts = match.group("parts")
    return match.group("topic"), (frozenset(int(p) for p in parts.split(",")) if parts else None)


def select(
    partitions: Iterable[TopicPartition], selectors: Mapping[str, frozenset[int] | None]
) -> list[TopicPartition]:
    """The partitions matching any selector (no selectors: all of them)."""
    if not selectors:
        return sorted(partitions)
    return sorted(
        tp
        for tp in partitions
        if tp.topic in selectors
        and (selectors[tp.topic] is None or tp.partition in (selectors[tp.topic] or ()))
    )


__all__ = [
    "PartitionOffsets",
    "PartitionPlan",
    "ResetKind",
    "ResetPlan",
    "ResetStrategy",
    "format_offsets_csv",
    "parse_datetime",
    "parse_duration",
    "parse_offsets_csv",
    "parse_topic_selector",
    "plan_reset",
    "select",
    "to_epoch_ms",
]
