"""Where a range starts and ends: :class:`Bound`, parsed once from what an operator types,
checked for contradictions before anything is read, and resolved per partition.

Pure: no I/O. One grammar serves every ``P:...`` option (``replay --from 0:100,1:250``,
``dlq redrive --offsets 0:100-200``): a comma list (or repeated option) of
``PARTITION:VALUE`` items.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from streaming.replay.errors import BoundsError, ResetPlanError
from streaming.replay.plan import parse_datetime, to_epoch_ms

V = TypeVar("V")


class BoundKind(enum.StrEnum):
    EARLIEST = "earliest"
    LATEST = "latest"
    OFFSET = "offset"
    TIME = "time"
    OFFSETS = "offsets"


@dataclass(frozen=True, slots=True)
class Bound:
    """One end of a replay range: earliest/latest, an offset, a time, or per-partition offsets."""

    kind: BoundKind
    offset: int = 0
    time_ms: int = 0
    offsets: Mapping[int, int] = field(default_factory=dict)

    @classmethod
    def earliest(cls) -> Bound:
        return cls(BoundKind.EARLIEST)

    @classmethod
    def latest(cls) -> Bound:
        return cls(BoundKind.LATEST)

    @classmethod
    def at_offset(cls, offset: int) -> Bound:
        return cls(BoundKind.OFFSET, offset=offset)

    @classmethod
    def at_time(cls, when: datetime | int) -> Bound:
        return cls(BoundKind.TIME, time_ms=when if isinstance(when, int) else to_epoch_ms(when))

    @classmethod
    def at_offsets(cls, offsets: Mapping[int, int]) -> Bound:
        """Per-partition offsets, e.g. a snapshot's committed offsets of the topic."""
        return cls(BoundKind.OFFSETS, offsets=dict(offsets))

    def describe(self) -> str:
        """A stable text of the bound (part of a replay's derived id)."""
        if self.kind is BoundKind.OFFSET:
            return str(self.offset)
        if self.kind is BoundKind.TIME:
            return f"t{self.time_ms}"
        if self.kind is BoundKind.OFFSETS:
            return ",".join(f"{p}:{o}" for p, o in sorted(self.offsets.items()))
        return self.kind.value


def parse_partition_items(
    values: Iterable[str], option: str, parse_value: Callable[[str], V], expected: str
) -> dict[int, V]:
    """``P:VALUE`` items, comma-separated and/or repeated, into ``{partition: value}``.

    ``parse_value`` raises ``ValueError`` on a bad value; ``expected`` names the form in
    the error (e.g. ``P:OFFSET``). A partition named twice is an error.
    """
    found: dict[int, V] = {}
    for value in values:
        for item in value.split(","):
            part, sep, rest = item.strip().partition(":")
            try:
                if not (sep and part.isdigit()):
                    raise ValueError(item)
                parsed = parse_value(rest.strip())
            except ValueError:
                raise BoundsError(
                    f"{option} {value!r}: expected {expected}[,{expected}...], e.g. "
                    f"{expected.replace('P', '0', 1)}"
                ) from None
            if int(part) in found:
                raise BoundsError(f"{option} {value!r}: partition {part} is named twice")
            found[int(part)] = parsed
    return found


def _offset(text: str) -> int:
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


def parse_bound(text: str | None, default: Bound, option: str) -> Bound:
    """``earliest``, ``latest``, ``OFFSET`` (every partition), ``P:OFFSET[,P:OFFSET...]``
    or an ISO 8601 time; ``None`` is ``default``."""
    if text is None:
        return default
    value = text.strip()
    if value in ("earliest", "latest"):
        return Bound.earliest() if value == "earliest" else Bound.latest()
    if value.isdigit():
        return Bound.at_offset(int(value))
    if ":" in value and value.split(":", 1)[0].strip().isdigit():
        return Bound.at_offsets(parse_partition_items([value], option, _offset, "P:OFFSET"))
    try:
        return Bound.at_time(to_epoch_ms(parse_datetime(value)))
    except ResetPlanError as exc:
        raise BoundsError(
            f"{option} {text!r}: expected earliest, latest, OFFSET, P:OFFSET[,P:OFFSET...] "
            "or an ISO 8601 time such as 2024-05-01T12:00:00Z"
        ) from exc


def parse_spans(values: Iterable[str], option: str) -> dict[int, tuple[int, int]]:
    """``P:START-END`` items (END exclusive), as ``dlq redrive --offsets`` takes them."""

    def span(text: str) -> tuple[int, int]:
        lo, sep, hi = text.partition("-")
        if not sep:
            raise ValueError(text)
        start, end = _offset(lo), _offset(hi)
        if end < start:
            raise ValueError(text)
        return start, end

    return parse_partition_items(values, option, span, "P:START-END")


def check_order(start: Bound, end: Bound, *, start_option: str, end_option: str) -> None:
    """Refuse a start that is after the end wherever both are known without the broker."""
    pairs: list[tuple[str, int, int]] = []
    if start.kind is end.kind is BoundKind.OFFSET:
        pairs.append(("", start.offset, end.offset))
    elif start.kind is end.kind is BoundKind.TIME:
        pairs.append(("", start.time_ms, end.time_ms))
    elif start.kind is BoundKind.OFFSETS and end.kind in (BoundKind.OFFSETS, BoundKind.OFFSET):
        for p, lo in sorted(start.offsets.items()):
            hi = end.offset if end.kind is BoundKind.OFFSET else end.offsets.get(p)
            if hi is not None:
                pairs.append((f" (partition {p})", lo, hi))
    elif start.kind is BoundKind.OFFSET and end.kind is BoundKind.OFFSETS:
        pairs += [(f" (partition {p})", start.offset, hi) for p, hi in sorted(end.offsets.items())]
    for where, lo, hi in pairs:
        if lo > hi:
            raise BoundsError(
                f"{start_option} {start.describe()} is after {end_option} "
                f"{end.describe()}{where}: the range would be empty; swap them"
            )


def resolve_bound(
    bound: Bound,
    partition: int,
    beginning: int,
    end: int,
    time_offset: int | None,
    *,
    missing: int,
) -> int:
    """Offset of ``bound`` in one partition, clamped into ``[beginning, end]``.

    A partition a per-partition bound does not name resolves to ``missing``.
    """
    if bound.kind is BoundKind.EARLIEST:
        value = beginning
    elif bound.kind is BoundKind.LATEST:
        value = end
    elif bound.kind is BoundKind.OFFSET:
        value = bound.offset
    elif bound.kind is BoundKind.TIME:
        value = end if time_offset is None else time_offset
    else:
        value = bound.offsets.get(partition, missing)
    return min(max(value, beginning), end)


__all__ = [
    "Bound",
    "BoundKind",
    "check_order",
    "parse_bound",
    "parse_partition_items",
    "parse_spans",
    "resolve_bound",
]
