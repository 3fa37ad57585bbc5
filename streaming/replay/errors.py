"""Replay errors: each subclasses the one tree in :mod:`streaming.errors` (drawn there)."""

from __future__ import annotations

from collections.abc import Iterable

from streaming.errors import GroupNotEmptyError, StreamingError, TransactionError


class ReplayError(StreamingError):
    """A replay, offset reset or DLQ redrive cannot do what was asked."""


class ResetPlanError(ReplayError):
    """The reset request is invalid for the group's current state; the message says why."""


class SnapshotNotFoundError(ReplayError):
    """No offsets snapshot exists for the group and name."""


class SnapshotExistsError(ReplayError):
    """An offsets snapshot of that group and name exists; replacing it needs ``force``."""


class BoundsError(ReplayError):
    """Replay bounds that do not parse, or that contradict each other (start after end)."""


class IncompatibleRangeError(ReplayError):
    """The target reader schema cannot read every writer schema id in the range."""

    def __init__(self, offending: Iterable[tuple[int, str]], *, unframed: int = 0) -> None:
        self.offending = tuple(sorted(offending))
        self.unframed = unframed
        ids = ", ".join(str(i) for i, _ in self.offending)
        details = "; ".join(f"id {i}: {why}" for i, why in self.offending)
        message = f"the reader schema cannot read writer schema id(s) {ids}: {details}"
        if unframed:
            message += f"; {unframed} record(s) are not in the registry wire format"
        super().__init__(message + " (evolve the reader schema or narrow the range)")


class GroupActiveError(GroupNotEmptyError):
    """The consumer group has active members, so its offsets must not be reset now."""

    def __init__(self, group: str, members: int) -> None:
        self.group = group
        self.members = members
        super().__init__(
            f"consumer group {group!r} has {members} active member(s); stop its consumers "
            "(or wait for their session timeout) and run the reset again; --dry-run shows "
            "the plan without changing anything"
        )


class ConcurrentRunFencedError(TransactionError):
    """A newer run with the same transactional id (same replay or same DLQ) fenced this one."""


__all__ = [
    "BoundsError",
    "ConcurrentRunFencedError",
    "GroupActiveError",
    "IncompatibleRangeError",
    "ReplayError",
    "ResetPlanError",
    "SnapshotExistsError",
    "SnapshotNotFoundError",
]
